"""Golden model of a cluster: ``cluster.cores`` cores on a ring behind one controller.

A cluster runs one command stream (``gen/spec/isa.py``). A core or DMA command runs on the
cores of its ``cores`` mask (0: every core); ``DMA_LOAD`` writes the same words into each
of them, ``DMA_STORE`` reads from exactly one. A collective runs on the ring, every core
taking part; ``sim.golden.ring`` defines its values. The RTL overlaps commands on different cores
(``docs/cluster.md``), but a command touches only the state of its own cores (and memory,
which only the DMA touches, in order), so the result is that of the stream run in order --
which is how this model runs it.

Each core is a :class:`sim.golden.machine.Machine` of one core (``cores[k]``): its scratchpad, its
banks, its counters. :attr:`ClusterMachine.counters` are the cluster's: the command, fetch,
DMA and ring counters once, the core counters summed over the cores. This module must not
import Amaranth.
"""

import dataclasses

import numpy as np

from chrysalis.gen.spec import isa
from chrysalis.gen.spec.isa import COLLECTIVES, ErrorCode, Limits, Opcode
from chrysalis.sim.golden import ring
from chrysalis.gen.spec.layout import tiles
from chrysalis.sim.golden.machine import COUNTER_NAMES, Machine, _normalize, run_stream

__all__ = ["ClusterMachine", "machine_for"]

#: Counters of the cluster as a whole (the rest are summed over the cores).
_CLUSTER_COUNTERS = ("commands", "fetch_beats", "dma_read_beats", "dma_write_beats",
                     "ring_words", "ring_cycles")


def machine_for(config):
    """The golden machine of ``config``: a :class:`Machine` for one core, a
    :class:`ClusterMachine` for a cluster."""
    return ClusterMachine(config) if config.cluster.cores > 1 else Machine(config)


class ClusterMachine:
    """The state of a cluster and the semantics of its commands.

    Parameters
    ----------
    config : gen.spec.config.Config
        ``cluster.cores`` from 2 to ``gen.spec.isa.MAX_CORES``.

    Members
    -------
    cores : list of sim.golden.machine.Machine
        Core ``k``'s state (``scratchpad``, ``weight``, ``act``) and core counters.
    dma_base, dma_last, dual_seed, reuse_strength : int
        The registers, as in :class:`sim.golden.machine.Machine`; every core sees them.
    counters : dict
        ``sim.golden.machine.COUNTER_NAMES`` to int.
    """

    def __init__(self, config):
        from chrysalis.gen.spec.config import Config
        if not isinstance(config, Config):
            raise TypeError(f"config must be a Config, not {config!r}")
        cores = config.cluster.cores
        if not 2 <= cores <= isa.MAX_CORES:
            raise ValueError(f"cluster.cores must be between 2 and {isa.MAX_CORES} for a "
                             f"cluster machine, not {cores!r}")
        self.config = config
        single = dataclasses.replace(config,
                                     cluster=dataclasses.replace(config.cluster, cores=1))
        self.cores = [Machine(single) for _ in range(cores)]
        self.banks = self.cores[0].banks
        self.beat_bytes = self.cores[0].beat_bytes
        self.dma_base = 0
        self.dma_last = (1 << config.host.axi_addr_width) - 1
        self.dual_seed = 0
        self.reuse_strength = 0
        self._own = dict.fromkeys(_CLUSTER_COUNTERS, 0)

    @property
    def counters(self):
        totals = dict.fromkeys(COUNTER_NAMES, 0)
        for core in self.cores:
            for name, value in core.counters.items():
                if name not in _CLUSTER_COUNTERS:
                    totals[name] += value
        totals.update(self._own)
        return totals

    def reset_counters(self):
        for core in self.cores:
            core.reset_counters()
        self._own = dict.fromkeys(_CLUSTER_COUNTERS, 0)

    def limits(self):
        return Limits.from_config(self.config, self.dma_base, self.dma_last)

    # --- running command streams -------------------------------------------------------

    def run(self, memory, cmd_base, cmd_count, mem_base=0):
        """As :meth:`sim.golden.machine.Machine.run`, on the cluster."""
        return run_stream(self, self._own, memory, cmd_base, cmd_count, mem_base)

    def execute(self, command, memory=None, mem_base=0):
        """As :meth:`sim.golden.machine.Machine.execute`, on the cluster."""
        fields = _normalize(command)
        if memory is not None:
            memory = Machine._check_memory(memory)
        return self._execute(fields, memory, mem_base)

    def _targets(self, c):
        mask = isa.core_mask(c, len(self.cores))
        return [k for k in range(len(self.cores)) if mask >> k & 1]

    def _execute(self, c, memory, mem_base):
        error = isa.check(c, self.limits())
        if error != ErrorCode.NONE:
            return error
        op = Opcode(c["op"])
        for core in self.cores:
            core.dual_seed, core.reuse_strength = self.dual_seed, self.reuse_strength
        if op in COLLECTIVES:
            self._collective(op, c)
        elif op in (Opcode.DMA_LOAD, Opcode.DMA_STORE):
            error = self._dma(op, c, memory, mem_base)
            if error != ErrorCode.NONE:
                return error
        else:
            for k in self._targets(c):
                self.cores[k].core_op(op, c)
        self._own["commands"] += 1
        return ErrorCode.NONE

    def _dma(self, op, c, memory, mem_base):
        """One transfer: a load reads memory once and writes every target's scratchpad;
        a store reads its one core."""
        targets = self._targets(c)
        first = self.cores[targets[0]]
        key = "dma_read_beats" if op == Opcode.DMA_LOAD else "dma_write_beats"
        before = first.counters[key]
        error = first._dma(op, c, memory, mem_base)
        if error != ErrorCode.NONE:
            return error
        first.counters[key] = before
        self._own[key] += tiles(4 * c["n"], self.beat_bytes) * c["batch"]
        for k in targets[1:]:
            for b in range(c["batch"]):
                line = (c["sp_base"] + b * c["sp_lpc"]) * self.banks
                self.cores[k].scratchpad[line:line + c["n"]] = \
                    first.scratchpad[line:line + c["n"]]
        return ErrorCode.NONE

    def _collective(self, op, c):
        n, batch, count = c["n"], c["batch"], len(self.cores)
        src_rows = n * count if op == Opcode.REDUCE_SCATTER else n
        dst_rows = n * count if op == Opcode.ALL_GATHER else n
        sources = [core.read_matrix(c["sp_base"], c["sp_lpc"], src_rows, batch)
                   for core in self.cores]
        destinations = [core.read_matrix(c["sp2_base"], c["sp2_lpc"], dst_rows, batch)
                        for core in self.cores]
        how = dict(root=c["root"], peer=c["peer"], in_place=ring.in_place(op, c))
        ring.execute(op, sources, destinations, n, **how)
        for core, values in zip(self.cores, destinations):
            core.write_matrix(c["sp2_base"], c["sp2_lpc"], values)
        self._own["ring_words"] += ring.link_words_moved(op, self.config, n, batch, **how)
        self._own["ring_cycles"] += ring.cycles(op, self.config, n, batch, **how)
