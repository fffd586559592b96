"""``chrysalis demo``: the options reach ``chrysalis.gen.cli.demo.main`` as given (the job
itself runs in tests/sim/verify and ``make demo``)."""

import pytest

from chrysalis.gen.cli import demo, demo_command, main
from chrysalis.sim.verify.runner import SIMULATORS


def test_simulators_are_the_runners():
    assert demo_command.SIMULATORS == SIMULATORS


@pytest.mark.parametrize("argv, forwarded", [
    ([], ["--batch", "8", "--steps", "1", "--seed", "0"]),
    (["--preset", "tiny", "--set", "core.rows=1", "--batch", "4", "--steps", "2", "--seed",
      "3", "-o", "build/d", "--simulator", "icarus", "--simulator", "verilator"],
     ["--preset", "tiny", "--set", "core.rows=1", "--batch", "4", "--steps", "2", "--seed",
      "3", "--output", "build/d", "--simulator", "icarus", "--simulator", "verilator"]),
    # The spelling from before -o/--output.
    (["--out", "build/d"], ["--batch", "8", "--steps", "1", "--seed", "0", "--output",
                            "build/d"]),
])
def test_options_are_forwarded(argv, forwarded, monkeypatch):
    calls = []
    monkeypatch.setattr(demo, "main", lambda args: calls.append(args) or 0)
    assert main(["demo", *argv]) == 0
    assert calls == [forwarded]


def test_the_demo_status_is_the_command_status(monkeypatch):
    monkeypatch.setattr(demo, "main", lambda args: 1)
    assert main(["demo", "--preset", "tiny"]) == 1


@pytest.mark.parametrize("argv, words", [
    (["--batch", "0"], ["--batch", "'0'"]),
    (["--simulator", "modelsim"], ["--simulator", "'modelsim'"]),
])
def test_bad_options_are_usage_errors(argv, words, capsys):
    with pytest.raises(SystemExit) as info:
        main(["demo", *argv])
    assert info.value.code == 2
    err = capsys.readouterr().err
    for word in words:
        assert word in err


def test_bad_config_is_one_line_before_the_demo_runs(monkeypatch, capsys):
    monkeypatch.setattr(demo, "main", lambda args: pytest.fail("the demo ran"))
    assert main(["demo", "--preset", "huge"]) == 2
    assert capsys.readouterr().err == \
        "chrysalis: error: preset must be one of default, tiny, not 'huge'\n"
