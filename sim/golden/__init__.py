"""The golden model, pure NumPy: bit-exact numerics, PE, core, cluster and machine models.

It imports neither Amaranth nor cocotb, so it runs anywhere NumPy does, and it is the
reference every RTL run is checked against bit for bit.
"""
