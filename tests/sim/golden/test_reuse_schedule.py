"""The reuse strength over training: the schedules (``sim.golden.reuse_schedule``), the training
driver's use of them (``sim.train.single.train(reuse=...)``) and ``chrysalis train --reuse``."""

import pytest

from chrysalis.gen import cli
from chrysalis.gen.spec.config import with_overrides
from chrysalis.sim.golden.reuse_schedule import (
    AdaptiveStrength, FixedStrength, ReuseSchedule, schedule_of)
from tests.sim.train.test_train import BATCH, SET_ARGS, SIZES, SMALL
from chrysalis.sim.train import single as tr

#: The training tests' small machine with a reuse cache of 8 entries in 2 ways per PE.
CACHED = with_overrides(SMALL, {"name": "tiny_reuse", "pe.reuse_entries": 8,
                                "pe.reuse_ways": 2})


def _strengths(schedule, losses):
    """The strength of each window, fed the windows' losses in turn."""
    out = []
    for loss in losses:
        out.append(schedule.strength)
        schedule.observe(loss)
    assert schedule.history == out
    return out


def test_fixed_strength_never_changes():
    assert _strengths(FixedStrength(5), [2.0, 1.0, 1.0, 3.0]) == [5, 5, 5, 5]


def test_adaptive_backs_off_at_each_plateau_and_never_rises():
    schedule = AdaptiveStrength(start=8, floor=5, plateau=0.2, step=1)
    # Falls of 50%, 10% (plateau), 25%, 5% (plateau), a rise, then plateaus at the floor.
    losses = [1.0, 0.5, 0.45, 0.3375, 0.32, 0.4, 0.39, 0.38, 0.1]
    assert _strengths(schedule, losses) == [8, 8, 8, 7, 7, 6, 5, 5, 5]


def test_adaptive_steps_of_two_stop_at_the_floor():
    schedule = AdaptiveStrength(start=8, floor=3, plateau=0.5, step=2)
    assert _strengths(schedule, [1.0, 0.9, 0.8, 0.7, 0.6]) == [8, 8, 6, 4, 3]


@pytest.mark.parametrize("make, match", [
    (lambda: FixedStrength(32), r"^k must be an integer from 0 to 31, not 32$"),
    (lambda: FixedStrength(True), r"^k must be an integer from 0 to 31, not True$"),
    (lambda: AdaptiveStrength(start=4, floor=5), r"^floor must be at most start \(4\), not 5$"),
    (lambda: AdaptiveStrength(plateau=1.5), r"^plateau must be a number between 0 and 1, "
                                            r"not 1.5$"),
    (lambda: AdaptiveStrength(step=0), r"^step must be a positive integer, not 0$"),
    (lambda: FixedStrength(3).observe(float("nan")), r"^loss must be a number, not nan$"),
    (lambda: schedule_of("fast"), r"^reuse must be 'adaptive' or a strength from 0 to 31, "
                                  r"not 'fast'$"),
    (lambda: schedule_of(2.5), r"^reuse must be None, a strength, 'adaptive' or a "
                               r"ReuseSchedule, not 2.5$"),
])
def test_bad_schedules_name_the_value(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_schedule_of_what_users_give():
    assert schedule_of(None).strength == 0
    assert isinstance(schedule_of(6), FixedStrength) and schedule_of(6).strength == 6
    assert schedule_of("7").strength == 7
    assert isinstance(schedule_of("adaptive"), AdaptiveStrength)
    mine = AdaptiveStrength(start=5, floor=2)
    assert schedule_of(mine) is mine and isinstance(mine, ReuseSchedule)


def _train(config, **kwargs):
    args = dict(sizes=SIZES, batch=BATCH, lr=0.1, seed=3, progress=False, log=None)
    args.update(kwargs)
    return tr.train(config, **args)


def test_training_with_the_cache_off_equals_training_without_one():
    off = _train(CACHED, steps=3, reuse=0)
    none = _train(SMALL, steps=3)
    for a, b in zip(off.weights, none.weights):
        assert (a == b).all()
    assert off.counters["reuse_lookups"] == 0


def test_training_with_exact_hits_changes_no_weight_but_avoids_multiplies():
    exact = _train(CACHED, steps=3, reuse=1)
    none = _train(SMALL, steps=3)
    for a, b in zip(exact.weights, none.weights):
        assert (a == b).all()
    assert exact.counters["multiplies_avoided"] > 0
    assert exact.history[0].reuse_strength == 1 and exact.reuse == "fixed k=1"


class _Countdown(ReuseSchedule):
    """A schedule that lowers the strength by 3 after every window, whatever the loss."""

    def _next(self, loss):
        return self.strength - 3


def test_training_asks_the_schedule_once_per_epoch(monkeypatch):
    """Two epochs: the second runs at the strength the schedule chose after the first, and
    the adaptive schedule's rule gets the epoch losses. (A training set of 64 digits keeps
    the epochs short.)"""
    from chrysalis.sim.compile import data
    digits = data.digits
    monkeypatch.setattr(data, "digits",
                        lambda seed: (lambda x, y, xt, yt: (x[:64], y[:64], xt, yt))(
                            *digits(seed)))
    result = _train(CACHED, epochs=2, batch=16, reuse=_Countdown(8))
    assert [h.reuse_strength for h in result.history] == [8, 5]
    assert result.to_dict()["history"][1]["reuse_strength"] == 5
    adaptive = AdaptiveStrength(start=8, floor=2, plateau=0.99, step=3)
    result = _train(CACHED, epochs=2, batch=16, reuse=adaptive)
    assert [h.reuse_strength for h in result.history] == [8, 8]   # no earlier epoch yet
    assert adaptive.strength == 5                                 # the loss fell < 99%
    assert result.reuse == "adaptive start=8 floor=2 plateau=0.99 step=3"


def test_reuse_without_a_cache_is_refused():
    with pytest.raises(ValueError, match=r"^reuse needs a reuse cache \(pe.reuse_entries > 0 "
                                         r"in config 'small_core'\), not reuse='adaptive'$"):
        _train(SMALL, steps=1, reuse="adaptive")


def test_cli_reuse(capsys):
    argv = ["train", "--preset", "tiny", *SET_ARGS, "--set", "pe.reuse_entries=8",
            "--sizes", "64,16,10", "--batch", "4", "--steps", "2", "--quiet", "--reuse", "6"]
    assert cli.main(argv) == 0
    assert "reuse strength 6" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["train", "--reuse", "40"])
    assert exit_info.value.code == 2
    assert "not '40'" in capsys.readouterr().err
