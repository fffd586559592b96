"""The ``chrysalis sweep`` and ``chrysalis report`` subcommands.

``sweep`` runs a sweep file (:mod:`gen.flows.sweep`) in local processes or on a Dask cluster,
recording every finished point as it finishes; ``report`` turns the results into tables and
plots (:mod:`gen.flows.report`).
"""

from pathlib import Path

from chrysalis.gen.spec.config import ConfigError

from .app import (
    Command, add_output_argument, check_output_dir, fail, positive_int, register)

__all__ = ["SWEEP", "REPORT"]


def _configure_sweep(parser):
    parser.add_argument("sweep", metavar="SWEEP.toml", help="the sweep file (docs/flows.md)")
    parser.add_argument("-j", "--jobs", type=positive_int, default=1, metavar="N",
                        help="points run at once in local processes (default 1)")
    add_output_argument(parser, help="the folder of the results (results.jsonl) and of each "
                                      "point's files (default: build/sweeps/<sweep name>)")
    parser.add_argument("--executor", choices=("local", "dask"), default="local",
                        help="local processes (default) or a Dask cluster")
    parser.add_argument("--scheduler", metavar="ADDR",
                        help="the Dask scheduler's address, e.g. tcp://10.0.0.1:8786")
    parser.add_argument("--retry-failed", action="store_true",
                        help="run again the points recorded as failed")
    parser.add_argument("--list", action="store_true",
                        help="list the points (key, flow, overrides) and whether each is "
                             "done, run nothing")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _run_sweep(args):
    from chrysalis.gen.flows.sweep import ResultStore, load_sweep, run_sweep
    if args.executor == "dask" and not args.scheduler:
        raise ConfigError("--executor dask needs --scheduler ADDR (a Dask scheduler's "
                          "address), not nothing")
    if args.scheduler and args.executor != "dask":
        raise ConfigError(f"--scheduler goes with --executor dask, not --executor "
                          f"{args.executor}")
    sweep = load_sweep(args.sweep)
    out = Path(args.output or f"build/sweeps/{sweep.name}")
    if args.list:
        store = ResultStore(out / "results.jsonl")
        for point in sweep.points:
            record = store.records.get(point.key)
            state = record["status"] if record else "pending"
            overrides = ", ".join(f"{k}={v}" for k, v in point.overrides.items())
            print(f"{point.key[:12]}  {state:<7}  {point.flow:<8}  {overrides}")
        return 0
    check_output_dir(out)
    print(f"sweep {sweep.name}: {len(sweep.points)} points, results in "
          f"{out / 'results.jsonl'}", flush=True)
    try:
        counts = run_sweep(sweep, out, jobs=args.jobs, executor=args.executor,
                           scheduler=args.scheduler, retry_failed=args.retry_failed,
                           progress=not args.quiet, log=lambda line: print(line, flush=True))
    except KeyboardInterrupt:
        return fail(f"interrupted: the finished points are in {out / 'results.jsonl'}; the "
                    f"same command runs the others", 130)
    print(f"{counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} already done "
          f"of {counts['total']}")
    return 1 if counts["failed"] else 0


SWEEP = register(Command(
    name="sweep",
    help="run a sweep of configs x flows (resumable; local processes or Dask)",
    description="Run every point (a config and a flow: verilog, synth, pnr, cycles, perf or "
                "a function of your own) of a sweep file. Each finished point is appended "
                "to <output>/results.jsonl at once (flushed and synced), keyed by a hash of "
                "its config, flow and options: run the same command again after a crash or "
                "Ctrl-C and only the missing points run. A point that fails is recorded "
                "with its error and log, and the others go on (exit status 1 when any "
                "failed in this run). Ctrl-C stops the local workers and their tools at "
                "once (exit status 130). The layout of a sweep file is in docs/flows.md.",
    epilog="examples:\n"
           "  chrysalis sweep sweeps/area.toml -j 2\n"
           "  chrysalis sweep sweeps/area.toml --list\n"
           "  chrysalis sweep sweeps/area.toml --executor dask --scheduler tcp://10.0.0.1:8786\n"
           "  chrysalis report build/sweeps/area",
    configure=_configure_sweep,
    run=_run_sweep,
))


def _configure_report(parser):
    parser.add_argument("results", metavar="RESULTS",
                        help="a sweep's results.jsonl, or its directory")
    add_output_argument(parser, help="the folder of the tables and plots (default: "
                                      "<results folder>/report)")
    parser.add_argument("--title", default=None, help="title of the Markdown report")


def _run_report(args):
    from chrysalis.gen.flows.report import fit_note, write_report
    from chrysalis.gen.flows.sweep import load_results
    records = load_results(args.results)
    source = Path(args.results)
    if not records:
        # A report of nothing would look like a sweep whose points all vanished.
        results = source / "results.jsonl" if source.is_dir() else source
        raise ConfigError(f"RESULTS must hold at least one sweep record (a JSON line with a "
                          f"key), not {str(results)!r}")
    base = source if source.is_dir() else source.parent
    out = check_output_dir(args.output or base / "report")
    written = write_report(records, out, title=args.title or f"Sweep results: {base.name}")
    fits, sizes = written.pop("fits"), written.pop("fit_sizes")
    for path in written.values():
        print(path)
    for label, exponent in fits.items():
        if exponent is None:
            continue
        note = fit_note(sizes[label])
        if note:
            print(f"exponent of area vs PEs ({label}): {exponent:.3f}, {note}")
        else:
            print(f"fitted exponent of area vs PEs ({label}): {exponent:.3f} "
                  f"({sizes[label]} sizes)")
    return 0


REPORT = register(Command(
    name="report",
    help="tables (CSV, Markdown) and plots (PNG) of a sweep's results",
    description="Read a sweep's results and write results.csv and results.md (one row per "
                "config, every flow's figures side by side), the plots area_vs_pes.png (per "
                "operand format, with the fitted exponent of area vs PEs), fmax_vs_pes.png, "
                "area_breakdown.png and pareto.png when the results hold what they need, "
                "and report.json (the fits and the Pareto front). An exponent from fewer "
                "than three sizes is printed with that caveat: a power law passes through "
                "any two points.",
    epilog="examples:\n"
           "  chrysalis report build/sweeps/area\n"
           "  chrysalis report build/sweeps/area/results.jsonl -o build/sweeps/area/report",
    configure=_configure_report,
    run=_run_report,
))
