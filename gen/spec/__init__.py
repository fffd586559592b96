"""The specification layer: configs, number formats, the command set and register map, networks.

Everything above builds on these definitions and nothing here imports from above: the
gateware (:mod:`chrysalis.hw`), the golden model (:mod:`chrysalis.sim.golden`) and the tools
read the same tables, so hardware and software share one source of truth.
"""
