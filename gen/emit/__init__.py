"""Verilog emission: a config's top level as Verilog, with everything other tools need beside it (sidecar, C headers, register map, file lists, waivers, testbench, FuseSoC core)."""
