"""Every config is either built by the gateware or refused by the config, never by a traceback.

Configs are drawn from the documented range of every field (``docs/config.md``) and from just
outside it and outside the hardware's limits. Each one must either elaborate
(``hw.top.build_top`` and ``Fragment.get``) or be refused with a :class:`ConfigError`, by the
config's own checks or by :func:`check_buildable`. The array sizes stay tiny (at most 2x2 PEs
and two cores) so that an example elaborates in about a second; the rules that only large
sizes reach are checked one by one below.
"""

import gc
import warnings

import pytest
from amaranth.hdl import Fragment, UnusedElaboratable
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chrysalis.gen.spec.config import (
    DUAL_POLICIES, PRESETS, REDUCTIONS, REUSE_SCOPES, ConfigError, check_buildable,
    with_overrides)
from chrysalis.gen.spec.isa import MAX_CORES
from chrysalis.hw.top import build_top


#: Field -> (values in the documented range, values just outside it or outside the
#: hardware's limits). In range, the array sizes are tiny: elaboration time grows with them.
FIELDS = {
    "mac.operand": (["fp32", "bf16", "fp16", "fp8_e4m3", "fp8_e5m2", "e5m7"],
                    ["e9m7", "e8m24", "e1m3", "e4m0", "fp64"]),
    "mac.accumulator": (["fp32"], ["bf16", "fp16"]),
    "mac.latency": (range(2, 13), [1, 13]),
    "mac.dual": (DUAL_POLICIES, ["none"]),
    "mac.low_man_bits": (range(1, 4), [0, 24]),
    "pe.weight_words": ([2, 4, 16, 64], [1, 3, 1 << 21]),
    "pe.act_words": ([2, 4, 16, 64], [1, 3, 1 << 21]),
    "pe.acc_regs": (range(4, 73), [0, 257, 29]),
    "pe.reuse_entries": ([0, 0, 4, 16], [3, 8192]),
    "pe.reuse_ways": ([1, 1, 2, 4], [0, 3, 32]),
    "pe.reuse_scope": (REUSE_SCOPES, ["core"]),
    "core.rows": ([1, 2], [0, 65]),
    "core.cols": ([1, 2], [0, 65]),
    "core.scratchpad_words": ([16, 64, 1024], [8, 24, 1 << 25]),
    "core.reduction": (REDUCTIONS, ["ring"]),
    "cluster.cores": ([1, 1, 2], [0, MAX_CORES + 1, 64, 65]),
    "cluster.link_width": ([32, 32, 64], [4, 8, 16, 48, 128, 1024, 2048]),
    "cluster.hop_latency": (range(1, 17), [0, 17]),
    "cluster.ring": (["one-way"], ["bidirectional", "two-way"]),
    "host.axi_data_width": ([32, 64], [16, 128, 256, 512]),
    "host.axi_addr_width": (range(12, 65), [11, 65]),
}


@st.composite
def overrides(draw):
    # A config in range whose fields agree, then up to two fields just outside: about half
    # the examples are valid (and elaborate), the others are refused.
    changes = {path: draw(st.sampled_from(tuple(inside)))
               for path, (inside, _) in FIELDS.items()}
    # Fields that depend on each other (docs/config.md) are drawn to agree.
    low_max = {"fp8_e5m2": 2}.get(changes["mac.operand"], 3)
    changes["mac.low_man_bits"] = draw(st.integers(1, low_max))
    pairs = 2 if changes["mac.dual"] != "single" else 1
    group = draw(st.integers(changes["mac.latency"] + 1, changes["mac.latency"] + 5))
    changes["pe.acc_regs"] = 2 * (group + group % 2 if pairs == 2 else group) * pairs
    changes["pe.reuse_ways"] = draw(st.sampled_from(
        [w for w in (1, 2, 4) if w <= max(1, changes["pe.reuse_entries"])]))
    for path in draw(st.lists(st.sampled_from(tuple(FIELDS)), max_size=2, unique=True)):
        changes[path] = draw(st.sampled_from(tuple(FIELDS[path][1])))
    return changes


@settings(max_examples=30, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow])
@given(overrides())
# The hardware's limits, whatever the draws: each is refused by check_buildable.
@example({"cluster.cores": MAX_CORES + 1})
@example({"cluster.cores": 2, "cluster.link_width": 16})
@example({"cluster.cores": 2, "cluster.ring": "bidirectional"})
@example({"mac.dual": "value", "pe.acc_regs": 29})
def test_every_config_elaborates_or_is_refused_by_the_config(changes):
    try:
        config = check_buildable(with_overrides(PRESETS["tiny"], changes))
    except ConfigError:
        return
    Fragment.get(build_top(config), None)


#: One config per rule of check_buildable, all with sizes the config's own checks accept,
#: and the field and value that its message names.
RULES = [
    ({"cluster.cores": MAX_CORES + 1}, "cluster.cores", MAX_CORES + 1),
    ({"cluster.cores": 64}, "cluster.cores", 64),
    ({"mac.dual": "value", "pe.acc_regs": 13}, "pe.acc_regs", 13),
    ({"core.rows": 32, "core.cols": 1, "core.scratchpad_words": 16}, "core.scratchpad_words",
     16),
    ({"cluster.cores": 2, "cluster.ring": "bidirectional"}, "cluster.ring",
     "'bidirectional'"),
    ({"cluster.cores": 2, "cluster.link_width": 16}, "cluster.link_width", 16),
    ({"cluster.cores": 2, "cluster.link_width": 128}, "cluster.link_width", 128),
]


@pytest.mark.parametrize("changes, field, value", RULES, ids=str)
def test_check_buildable_refuses_what_the_gateware_refuses(changes, field, value):
    config = with_overrides(PRESETS["tiny"], changes)
    with pytest.raises(ConfigError, match=rf"^{field} .*, not {value}$"):
        check_buildable(config)
    # The gateware's own check (the second guard) refuses the same config.
    with pytest.raises(ValueError):
        Fragment.get(build_top(config), None)
    # Components built before the refusal are never used: expected here, and dropped now.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnusedElaboratable)
        gc.collect()


def test_check_buildable_refuses_accumulators_the_gateware_does_not_build():
    # The PEs accumulate in fp32 whatever mac.accumulator says: Verilog emitted for a bf16
    # accumulator would not be the config's (the golden model honours the field).
    config = with_overrides(PRESETS["tiny"], {"mac.accumulator": "bf16"})
    with pytest.raises(ConfigError, match=r"^mac.accumulator .*, not 'bf16'$"):
        check_buildable(config)


def test_check_buildable_passes_the_presets():
    for config in PRESETS.values():
        assert check_buildable(config) is config
