"""The ring's timing constants, shared by the ring engine (:mod:`chrysalis.hw.ring`), the
golden collectives (:mod:`chrysalis.sim.golden.ring`) and the performance model."""

__all__ = ["RING_ADD_LATENCY", "PHASE_OVERHEAD", "link_words", "hop_cycles"]

#: Register stages of the ring's fp32 adder (``hw.fadd.FloatAdder``).
RING_ADD_LATENCY = 2
#: Cycles of a phase beyond its beats and hops: its start and its last write.
PHASE_OVERHEAD = 2


def link_words(config):
    """fp32 words a link carries per cycle (``cluster.link_width / 32``)."""
    return max(1, config.cluster.link_width // 32)


def hop_cycles(config):
    """Cycles from one core of a chain to the next: the adder and the link."""
    return config.cluster.hop_latency + RING_ADD_LATENCY
