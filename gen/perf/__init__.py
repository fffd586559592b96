"""The performance and energy model of Chrysalis accelerators (``docs/perf_model.md``).

Layers, from the bottom:

* :mod:`gen.perf.commands`: one command, in closed form (cycles, counters, DMA beats);
* :mod:`gen.perf.stream`: a command stream per phase (an MLP step exactly as the RTL runs);
* :mod:`gen.perf.layer`: a layer of any size on one core under a tiling (:class:`Mapping`);
* :mod:`gen.perf.network`: a whole network on one core or a cluster (SGD, MBGD, CP, data
  and model parallel);
* :mod:`gen.perf.energy_model`: the counters priced by ``gen.perf.energy``'s table;
* :mod:`gen.perf.validate`: the model against ``sim.golden.core_counts`` and the RTL counters.

:func:`evaluate` is the one-call summary a sweep uses.
"""

from .commands import TESTBENCH_MEMORY, MemoryTiming, command_cost, core_command
from .energy_model import energy_of
from .layer import Mapping, fit_mapping, layer_cost
from .network import MODES, network_cost
from .stream import mlp_step, stream_cost

__all__ = ["evaluate", "DEFAULT_NETWORK", "DEFAULT_BATCH", "MemoryTiming", "TESTBENCH_MEMORY",
           "command_cost", "core_command", "stream_cost", "mlp_step", "Mapping",
           "fit_mapping", "layer_cost", "network_cost", "MODES", "energy_of"]

#: What :func:`evaluate` trains: the digits MLP, batch 8.
DEFAULT_NETWORK = (64, 32, 10)
DEFAULT_BATCH = 8


def evaluate(config, sizes=DEFAULT_NETWORK, batch=DEFAULT_BATCH, timing=TESTBENCH_MEMORY):
    """Cycles, utilization and energy of one SGD step of an MLP on ``config`` (one core).

    When the compiler can place the MLP on one core (``sim.compile.compiler``), the step is the
    command stream the RTL runs on one core (weights stored back to memory every step, as
    ``chrysalis train``); otherwise the layer model (:func:`network_cost`, minibatch mode,
    on ``cluster.cores`` cores) with its tiling.

    Parameters
    ----------
    config : gen.spec.config.Config
    sizes : sequence of int
        The MLP (default 64-32-10).
    batch : int
        Samples per step (default 8).
    timing : MemoryTiming

    Returns
    -------
    dict
        ``cycles_per_step``, ``useful_macs``, ``utilization`` (useful MACs / (PEs x MACs
        per PE per cycle x cycles), the PEs of the cores used), ``energy_pj`` (dynamic,
        per step), ``pj_per_mac``,
        ``gflops_per_watt``, ``phase_cycles`` (phase -> cycles) and ``source``
        (``"command stream"`` or ``"layer model"``).
    """
    from chrysalis.gen.spec.networks import mlp
    try:
        result = mlp_step(config, list(sizes), batch, timing)
        result["cycles"] = result["total"]["cycles"]
        source = "command stream"
    except ValueError:
        result = network_cost(config, mlp(list(sizes)), batch, "mbgd", timing=timing)
        source = "layer model"
    energy = energy_of(config, result)
    cycles = result["cycles"]
    if "utilization" not in result:         # the command stream runs on one core
        peak = config.core.pes * config.mac.macs_per_cycle
        result["utilization"] = result["useful_macs"] / (peak * cycles)
    return {"cycles_per_step": cycles, "useful_macs": result["useful_macs"],
            "utilization": result["utilization"],
            "energy_pj": energy["total_pj"], "pj_per_mac": energy["pj_per_mac"],
            "gflops_per_watt": energy["gflops_per_watt"],
            "phase_cycles": {name: entry["cycles"] for name, entry in result["phases"].items()},
            "source": source}
