"""Golden model, compiler, training driver and simulator runners.

The golden model (``sim.golden.numerics`` and what builds on it) is pure NumPy: it imports neither
Amaranth nor cocotb, so it runs anywhere NumPy does.
"""
