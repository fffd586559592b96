"""Configs, Verilog emission, implementation flows and the ``chrysalis`` command line.

``gen.spec.formats`` and ``gen.spec.config`` are pure Python so the golden model can share them.
"""
