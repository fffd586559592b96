"""Energy of a modelled run: the model's counters priced by ``gen.perf.energy``'s table.

The model predicts the counters the RTL counts (``gen.spec.isa.COUNTERS``); ``gen.perf.energy.events``
turns them into priced events and ``gen.perf.energy.estimate`` prices them, so the model and a
measured run are costed by one table. What the RTL cannot count yet is set here:

* dual precision: which multiplier makes a product depends on the data; the model takes
  a fraction ``low_fraction`` of the products to the low-precision multiplier (the value
  policy sends the smaller product of each pair there: about half);
* reuse: a hit rate ``reuse_hit_rate`` of the lookups (one per product);
* ring words (clusters, not in RTL): each priced as a bus word, an estimate
  (``docs/perf_model.md``);
* the weights a fused ``WGRAD`` reads at its first MAC and writes back at its last
  (``fused_weights`` of the phases): a weight-bank read and write each;
* the MACs' operand reads (``stationary_reads`` and ``streaming_reads`` of the phases,
  those the compute engine does not hold, ``sim.golden.core_counts``): the stationary
  operand is a weight-bank read in the forward and backward phases and an
  activation-bank read (the gradient) in the weight gradient's; the streaming operand is
  always an activation-bank read.
"""

from chrysalis.gen.perf import energy

__all__ = ["model_counters", "operand_reads", "energy_of", "DEFAULT_CLOCK_HZ"]

#: Phases whose stationary operand is in the weight bank; the weight gradient's
#: (``wgrad_update``) is in the activation bank.
_WEIGHT_STATIONARY = ("forward", "backward")

#: The clock the GFLOPS/W figures assume (cancels out without static power).
DEFAULT_CLOCK_HZ = 1e9


def model_counters(config, phases, copies=1, low_fraction=0.5, reuse_hit_rate=0.0):
    """``gen.spec.isa.COUNTERS`` names -> counts (integers), from the model's summed phases."""
    total = {}
    for entry in phases.values():
        for key, value in entry.items():
            total[key] = total.get(key, 0) + value
    products = total.get("products", 0) * copies
    lookups = products if config.pe.reuse_entries else 0
    hits = lookups * reuse_hit_rate
    multiplied = products - hits
    low = multiplied * low_fraction if config.mac.dual not in ("single",) else 0.0
    counters = {
        "HIGH_PRODUCTS": multiplied - low, "LOW_PRODUCTS": low, "BYPASS_PRODUCTS": 0,
        "UPDATE_SLOTS": total.get("update_slots", 0) * copies,
        "BUS_WORDS": total.get("bus_words", 0) * copies,
        "DMA_READ_BEATS": total.get("dma_read_beats", 0) * copies,
        "DMA_WRITE_BEATS": total.get("dma_write_beats", 0) * copies,
        "FETCH_BEATS": total.get("fetch_beats", 0) * copies,
        "REUSE_LOOKUPS": lookups, "REUSE_HITS": hits,
    }
    return {key: int(round(value)) for key, value in counters.items()}


def operand_reads(phases, copies=1):
    """``(weight bank, activation bank)`` reads of MAC operands per PE of the summed phases
    (``gen.perf.energy.events``' ``operand_reads``), or None when the phases do not carry
    them."""
    if not any("stationary_reads" in entry for entry in phases.values()):
        return None
    weight = act = 0
    for name, entry in phases.items():
        stationary = entry.get("stationary_reads", 0)
        if name in _WEIGHT_STATIONARY:
            weight += stationary
        else:
            act += stationary
        act += entry.get("streaming_reads", 0)
    return int(round(weight * copies)), int(round(act * copies))


def energy_of(config, result, table=None, low_fraction=0.5, reuse_hit_rate=0.0,
              clock_hz=DEFAULT_CLOCK_HZ):
    """Energy and efficiency of a modelled step (a ``network_cost`` or ``mlp_step``-like
    dict with ``phases``, ``cycles``, ``useful_macs``; ``core_copies`` and ``ring_words``
    if a cluster).

    Returns
    -------
    dict
        ``per_event`` (pJ, ``ring_word`` included), ``total_pj``, ``pj_per_mac``,
        ``gflops_per_watt`` (2 FLOPs per useful MAC, dynamic energy only), ``watts`` at
        ``clock_hz``.
    """
    table = energy.load(config=config) if table is None else table
    counters = model_counters(config, result["phases"], result.get("core_copies", 1),
                              low_fraction, reuse_hit_rate)
    # The weights a fused update reads and writes back: priced, though no counter has them.
    fused = sum(entry.get("fused_weights", 0) for entry in result["phases"].values())
    fused = int(round(fused * result.get("core_copies", 1)))
    reads = operand_reads(result["phases"], result.get("core_copies", 1))
    est = energy.estimate(table, energy.events(config, counters, fused_weights=fused,
                                               operand_reads=reads))
    per_event = dict(est.per_event)
    per_event["ring_word"] = result.get("ring_words", 0) * table.bus_word
    total = sum(per_event.values())
    macs = result["useful_macs"]
    cycles = result["cycles"]
    return {"per_event": per_event, "total_pj": total,
            "pj_per_mac": total / macs if macs else 0.0,
            "gflops_per_watt": energy.gflops_per_watt(total, macs, cycles, clock_hz),
            "watts": total * 1e-12 * clock_hz / cycles if cycles else 0.0,
            "counters": counters}
