"""Verilog emission: a config's top level as Verilog, with its sidecar, C headers and file list."""
