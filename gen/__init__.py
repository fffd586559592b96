"""Configs, Verilog emission, implementation flows and the ``chrysalis`` command line.

``gen.formats`` and ``gen.config`` are pure Python so the golden model can share them.
"""
