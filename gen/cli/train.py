"""``chrysalis train``: train an MLP on scikit-learn's digits on the accelerator of a config.

One core (``sim.train.single``) on the golden machine model or the RTL, or a cluster
(``sim.train.cluster``) data parallel, model parallel or in continuous propagation. A
built-in network (``--network``, ``gen.spec.model``) or an ONNX file (``--model``,
``sim.compile.onnx_io``): an MLP trains as above, a convolutional network on the golden
CNN step or, compiled (``sim.compile.cnn_program``), on the RTL (``sim.train.cnn``);
``--out`` writes the trained network as ONNX.
"""

import argparse

from chrysalis.gen.spec.config import ConfigError
from chrysalis.gen.spec.formats import FP32

from .app import (
    Command, add_config_arguments, add_output_argument, check_output_dir, check_writable,
    config_from_args, fail, non_negative_int, positive_int, register)

__all__ = ["TRAIN", "LR", "BATCH", "EPOCHS", "SIZES", "BACKENDS", "HARNESSES", "MODES",
           "CP_LR", "CP_EPOCHS", "UPDATES", "NETWORKS", "CNN_LR", "CNN_BATCH", "CNN_EPOCHS"]

# The defaults of sim.train.single (DEFAULT_LR, DEFAULT_BATCH, DEFAULT_EPOCHS, DIGITS_SIZES,
# BACKENDS), spelled out so that `--help` does not import NumPy;
# tests/sim/train/test_train.py checks they agree.
LR = 0.1
BATCH = 8
EPOCHS = 12
SIZES = (64, 32, 10)
BACKENDS = ("golden", "icarus", "verilator")
# sim.train.rtl.HARNESSES, checked as above.
HARNESSES = ("native", "cocotb")
# sim.compile.compiler.UPDATES, checked as above.
UPDATES = ("fused", "separate")
# sim.train.cluster.MODES and sim.compile.cp_program's defaults, checked as above.
MODES = ("data", "model", "cp")
CP_LR = 0.02
CP_EPOCHS = 8
# gen.spec.model.MODELS and sim.train.cnn's defaults, checked as above.
NETWORKS = ("digits-cnn", "digits-mlp")
CNN_LR = 0.1
CNN_BATCH = 8
CNN_EPOCHS = 20


def _number(text, positive):
    import math
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (0 < value if positive else 0 <= value) or not math.isfinite(value):
        raise argparse.ArgumentTypeError(
            f"must be a {'positive' if positive else 'non-negative'} number, not {text!r}")
    return value


def _layer_sizes(text):
    parts = text.split(",")
    try:
        sizes = tuple(int(p) for p in parts)
    except ValueError:
        sizes = ()
    if len(sizes) < 2 or any(s < 1 for s in sizes):
        raise argparse.ArgumentTypeError(
            f"must be at least two positive layer sizes separated by commas (64,32,10), "
            f"not {text!r}")
    return sizes


def _configure_train(parser):
    add_config_arguments(parser, required=False)
    parser.add_argument("--backend", choices=BACKENDS, default="golden",
                        help="where the accelerator runs: the golden machine model (fast, "
                             "bit-exact with the RTL) or its Verilog under a simulator "
                             "(default: golden)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=positive_int, metavar="N",
                        help=f"train N epochs, measuring after each (default: "
                             f"{EPOCHS}; --mode cp: {CP_EPOCHS})")
    length.add_argument("--steps", type=positive_int, metavar="N",
                        help="train N SGD steps, measuring at the end")
    parser.add_argument("--batch", type=positive_int, metavar="B",
                        help=f"samples per minibatch; the remainder of each epoch is dropped "
                             f"(default: {BATCH}; --mode cp: 1)")
    parser.add_argument("--lr", type=lambda t: _number(t, True), metavar="LR",
                        help=f"learning rate (default: {LR}; --mode cp: "
                             f"{CP_LR})")
    parser.add_argument("--momentum", type=lambda t: _number(t, False), metavar="MU",
                        help="SGD with momentum MU (default: plain SGD)")
    parser.add_argument("--update", choices=UPDATES, default=None,
                        help="the SGD update: 'fused' into the weight-gradient pass (the "
                             "learning rate carried in the gradients) or a 'separate' pass "
                             "(default: fused for plain SGD with mac.dual = single, on one "
                             "core and with --mode model or cp; separate with --momentum, a "
                             "dual policy or --mode data, whose gradients are all-reduced "
                             "before the update; docs/architecture.md, docs/cluster.md)")
    parser.add_argument("--sizes", type=_layer_sizes, default=SIZES, metavar="N,..,N",
                        help=f"layer sizes, 64 inputs to 10 classes (default: "
                             f"{','.join(map(str, SIZES))})")
    network = parser.add_mutually_exclusive_group()
    network.add_argument("--network", choices=NETWORKS,
                         help="a built-in network instead of --sizes: digits-cnn (conv3x3 "
                              "1->8, ReLU, conv3x3 stride 2 8->16, ReLU, dense 256->10; "
                              f"lr {CNN_LR}, batch {CNN_BATCH}, {CNN_EPOCHS} epochs by "
                              "default) or digits-mlp (64-32-10)")
    network.add_argument("--model", metavar="FILE.onnx",
                         help="a network and its initial weights from an ONNX file (Conv, "
                              "Relu, Flatten, Reshape, Gemm, MatMul, Add; 64 inputs, 10 "
                              "classes)")
    parser.add_argument("--out", metavar="FILE.onnx",
                        help="with --network or --model: write the trained network as ONNX")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="initial weights and minibatch order (default: 0)")
    parser.add_argument("--harness", choices=HARNESSES, default=None,
                        help="RTL backends: native (the host and memory in C++ under "
                             "Verilator, in Verilog under Icarus: no Python during a run; "
                             "the default) or cocotb (cocotbext-axi; the default with --waves)")
    parser.add_argument("--waves", action="store_true",
                        help="RTL backends: dump waveforms, one file per simulation")
    # dest `build_dir`: the name of the drivers' argument it is passed to.
    add_output_argument(parser, default="build/train", dest="build_dir", old=("--build-dir",),
                        help="RTL backends: the folder of the Verilog, simulator builds and "
                             "waveforms (default: build/train)")
    parser.add_argument("--json", metavar="FILE",
                        help="write the result (history, counters, final weights) as JSON "
                             "(its folder is made when missing)")
    parser.add_argument("--quiet", action="store_true",
                        help="no progress bar (the per-epoch lines are still printed)")
    parser.add_argument("--mode", choices=MODES,
                        help="train on a cluster (cluster.cores >= 2, docs/cluster.md): "
                             "'data' parallel, 'model' parallel or 'cp' (continuous "
                             "propagation, layers pipelined over the cores, batch 1 and "
                             f"lr {CP_LR} by default); a cluster needs one")
    parser.add_argument("--reuse", type=_reuse_strength, metavar="K|adaptive",
                        help="the reuse cache's strength (needs pe.reuse_entries > 0): a "
                             "fixed REUSE_STRENGTH K (0: off, 1: exact hits, larger: "
                             "coarser keys), or 'adaptive': start coarse and back off when "
                             "the epoch loss stops falling (docs/reuse.md; default: off)")


def _reuse_strength(text):
    if text == "adaptive":
        return text
    if text.isdigit() and int(text) <= 31:
        return int(text)
    raise argparse.ArgumentTypeError(f"must be 'adaptive' or a strength from 0 to 31, "
                                     f"not {text!r}")


def _write_result(name, result):
    import json
    from pathlib import Path
    path = Path(name)
    if path.parent != Path():
        path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result.to_dict(), indent=1) + "\n")
    print(f"result written to {path}")


def _run_train(args):
    from chrysalis.sim.train.single import train  # NumPy and tqdm: only when training
    if args.waves and args.backend == "golden":
        raise ConfigError("--waves needs an RTL backend (--backend icarus or verilator), "
                          "not golden")
    # The RTL backends build the Verilog: refuse a config the gateware cannot build.
    config = config_from_args(args, buildable=args.backend != "golden")
    if config.mac.accumulator != FP32:
        # The golden machine computes what the RTL computes: fp32 accumulators and master
        # weights (sim.golden.core_model). Said now, by the config field's name.
        raise ConfigError(f"mac.accumulator must be 'fp32' (the accumulators and master "
                          f"weights of the golden machine) to train, not "
                          f"{config.mac.accumulator.name!r}")
    if args.mode is not None and config.cluster.cores < 2:
        # Said first: no other option of a cluster run matters without a cluster.
        raise ConfigError(f"--mode {args.mode} trains on a cluster: cluster.cores must be at "
                          f"least 2 (--set cluster.cores=2), not {config.cluster.cores!r}")
    # Outputs are refused now, not after a training of minutes.
    if args.json is not None:
        check_writable(args.json, "--json")
    if args.backend != "golden":
        check_output_dir(args.build_dir)
    if args.network is not None or args.model is not None:
        return _run_model_train(args, config)
    if args.out is not None:
        raise ConfigError(f"--out writes a network given by --network or --model, not "
                          f"{args.out!r} alone")
    if args.mode is not None or config.cluster.cores > 1:
        return _run_cluster_train(args, config)
    args.batch = BATCH if args.batch is None else args.batch
    args.lr = LR if args.lr is None else args.lr
    epochs = args.epochs if args.steps is None and args.epochs is not None else None
    if args.steps is None and epochs is None:
        epochs = EPOCHS
    try:
        result = train(config, sizes=args.sizes, batch=args.batch, lr=args.lr,
                       momentum=args.momentum, steps=args.steps, epochs=epochs,
                       seed=args.seed, backend=args.backend, build_dir=args.build_dir,
                       waves=args.waves, harness=args.harness, progress=not args.quiet,
                       log=lambda line: print(line, flush=True), reuse=args.reuse,
                       update=args.update)
    except ValueError as error:
        # Arguments the user can fix, a network that does not fit the config among them.
        raise ConfigError(str(error)) from None
    except RuntimeError as error:
        return fail(error, 1)
    if args.json is not None:
        _write_result(args.json, result)
    return 0 if result.golden_match in (None, True) else 1


def _load_model(args):
    """The network of ``--network`` or ``--model``, and its initial weights (``None``: the
    seed's)."""
    if args.network is not None:
        from chrysalis.gen.spec.model import get_model
        return get_model(args.network), None, f"--network {args.network}"
    from chrysalis.sim.compile.onnx_io import read_onnx
    model, weights = read_onnx(args.model)  # an OnnxError is a ValueError: one line
    return model, weights, f"--model {args.model}"


def _run_model_train(args, config):
    """``chrysalis train --network`` or ``--model``: an MLP through the MLP driver (every
    backend), a convolutional network through the CNN driver (``sim.train.cnn``: the golden
    CNN step, or its compiled program on the RTL)."""
    for flag, value in (("--out", args.out), ("--json", args.json)):
        if value is not None:
            check_writable(value, flag)
    if args.sizes != SIZES:
        raise ConfigError(f"--sizes sets the layers of the default MLP; --network and "
                          f"--model bring their own, not --sizes "
                          f"{','.join(map(str, args.sizes))}")
    if args.mode is not None or config.cluster.cores > 1:
        raise ConfigError(f"--network and --model train on one core: cluster.cores must be "
                          f"1 and no --mode, not {config.cluster.cores} cores"
                          + (f" with --mode {args.mode}" if args.mode else ""))
    try:
        model, weights, _ = _load_model(args)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    epochs = args.epochs if args.steps is None else None
    log = (lambda line: print(line, flush=True))
    try:
        if model.is_mlp:
            from chrysalis.sim.train.single import train
            result = train(config, sizes=model.mlp_sizes,
                           batch=BATCH if args.batch is None else args.batch,
                           lr=LR if args.lr is None else args.lr, momentum=args.momentum,
                           steps=args.steps,
                           epochs=EPOCHS if args.steps is None and epochs is None else epochs,
                           seed=args.seed, backend=args.backend, build_dir=args.build_dir,
                           waves=args.waves, harness=args.harness, progress=not args.quiet,
                           log=log, reuse=args.reuse, update=args.update, weights=weights)
        else:
            for flag, value in (("--momentum", args.momentum), ("--reuse", args.reuse),
                                ("--update", None if args.update in (None, "fused")
                                 else args.update)):
                if value is not None:
                    raise ConfigError(f"{flag} is not supported with a convolutional "
                                      f"network (plain SGD fused into the weight "
                                      f"gradient), not {value!r}")
            from chrysalis.sim.train.cnn import train_model
            result = train_model(config, model,
                                 batch=CNN_BATCH if args.batch is None else args.batch,
                                 lr=CNN_LR if args.lr is None else args.lr,
                                 steps=args.steps,
                                 epochs=(CNN_EPOCHS if args.steps is None and epochs is None
                                         else epochs),
                                 seed=args.seed, weights=weights, progress=not args.quiet,
                                 log=log, backend=args.backend, build_dir=args.build_dir,
                                 waves=args.waves, harness=args.harness)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    except RuntimeError as error:
        return fail(error, 1)
    if args.out is not None:
        from pathlib import Path

        from chrysalis.sim.compile.onnx_io import write_onnx
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        write_onnx(args.out, model, result.weights)
        print(f"trained network written to {args.out}")
    if args.json is not None:
        _write_result(args.json, result)
    return 0 if result.golden_match in (None, True) else 1


def _run_cluster_train(args, config):
    """``chrysalis train`` on a cluster: a mode's epochs on the golden cluster, or its first
    steps on the RTL checked against the golden cluster (``sim.train.cluster``)."""
    from chrysalis.sim.train import cluster as cluster_train
    if args.mode is None:
        raise ConfigError(f"config {config.name!r} has cluster.cores = "
                          f"{config.cluster.cores}: say how to train on it with --mode "
                          f"{', '.join(MODES)}")
    for flag, value in (("--momentum", args.momentum), ("--reuse", args.reuse),
                        ("--waves", args.waves or None), ("--harness", args.harness)):
        if value is not None:
            raise ConfigError(f"{flag} is not supported with --mode {args.mode}, "
                              f"not {value!r}")
    log = (lambda line: print(line, flush=True))
    try:
        if args.backend == "golden":
            if args.steps is not None:
                raise ConfigError("--steps with --mode runs the RTL against the golden "
                                  "cluster (--backend icarus or verilator); the golden "
                                  "backend trains whole epochs (--epochs)")
            result = cluster_train.train_cluster(
                config, args.mode, sizes=args.sizes, batch=args.batch, lr=args.lr,
                epochs=args.epochs, seed=args.seed, progress=not args.quiet, log=log,
                update=args.update)
            history = result.history
            last = history[-1]
            print(f"{args.mode} on {config.cluster.cores} cores: test accuracy "
                  f"{100 * last.acc:.2f}% after {len(history)} epochs")
            ok = True
        else:
            if args.epochs is not None:
                raise ConfigError(f"--mode with --backend {args.backend} runs --steps N, "
                                  f"not --epochs {args.epochs}")
            result = cluster_train.run_cluster_rtl(
                config, args.mode, steps=args.steps or 2, simulator=args.backend,
                build_dir=args.build_dir, sizes=args.sizes, batch=args.batch, lr=args.lr,
                seed=args.seed, log=log, update=args.update)
            ok = result.golden_match
    except ValueError as error:
        raise ConfigError(str(error)) from None
    except RuntimeError as error:
        return fail(error, 1)
    if args.json is not None:
        _write_result(args.json, result)
    return 0 if ok else 1


TRAIN = register(Command(
    name="train",
    help="train a network on scikit-learn's digits on the accelerator",
    description="Train an MLP on scikit-learn's digits on the accelerator of a config (by "
                "default the `default` preset): one doorbell per SGD step, the minibatches "
                "written into memory by the host, the weights kept on chip. After each epoch "
                "it prints the training loss and the test accuracy, next to those of a "
                "float32 NumPy reference trained from the same weights on the same "
                "minibatches. The RTL backends also report the simulated cycles and the "
                "utilization, and check every memory image and counter against the golden "
                "machine model. Both simulators run in a native harness (no Python during a "
                "run: a whole 12-epoch training takes minutes under Verilator), --harness "
                "cocotb drives them from cocotbext-axi instead. A network that does not fit the config is refused with one line "
                "saying why (exit status 2). The defaults (batch 8, lr 0.1, 12 epochs) reach "
                "at least 95% test accuracy on the default preset. --network digits-cnn trains a "
                "convolutional network on the golden CNN step or, compiled into GATHER and "
                "dense commands, on the RTL (docs/convolution.md), --model "
                "reads a network and its weights from an ONNX file, and --out writes the "
                "trained network as ONNX.",
    epilog="examples:\n"
           "  chrysalis train                                  # golden, default preset, "
           "12 epochs\n"
           "  chrysalis train --epochs 3 --lr 0.05 --momentum 0.5 --json build/train.json\n"
           "  chrysalis train --backend verilator --epochs 12   # the whole training on the "
           "RTL\n"
           "  chrysalis train --backend verilator --steps 20 --harness cocotb\n"
           "  chrysalis train --backend icarus --steps 2 --waves\n"
           "  chrysalis train --set pe.reuse_entries=16 --set pe.reuse_ways=4 --reuse "
           "adaptive\n"
           "  chrysalis train --set cluster.cores=2 --mode data --epochs 12\n"
           "  chrysalis train --set cluster.cores=2 --mode cp --backend verilator --steps 4\n"
           "  chrysalis train --network digits-cnn               # the digits CNN, golden\n"
           "  chrysalis train --network digits-cnn --backend verilator --steps 10\n"
           "  chrysalis train --model net.onnx --out trained.onnx",
    configure=_configure_train,
    run=_run_train,
))
