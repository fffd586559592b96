"""The cases of the core's cocotb testbench (``sim/verify/tb/core.py``): config, shapes, data, the
scratchpad layout and the golden results, shared by the testbench (inside the simulator) and
the pytest side that sets up the run (``tests/sim/verify/test_cocotb_core.py``).

Environment (see :func:`case_env` and :func:`config_from_env`):

``CHRYSALIS_CONFIG``
    The core's config as TOML text (``Config.to_toml()``). When it is not set, the config is
    ``CHRYSALIS_PRESET`` (a name in ``gen.spec.config.PRESETS``, default ``tiny``) with
    ``CHRYSALIS_OVERRIDES`` applied: ``PATH=VALUE`` items separated by ``;`` or ``,``
    (``core.cols=3;mac.latency=3``).
``CHRYSALIS_SHAPES``
    Layer shapes ``MxNxB`` (output features, input features, batch) separated by ``,``,
    e.g. ``5x3x2,3x7x3``; one cocotb test per shape.
``CHRYSALIS_SEED``
    Base seed of the data (each shape's data is drawn from ``(seed, m, n, batch)``).
``CHRYSALIS_LR``
    Learning rate of the WGRAD update (default ``0.125``).
``CHRYSALIS_REPORT``
    Optional path of a JSON file the testbench writes its cycle counts and counters to.
"""

import os
from dataclasses import dataclass

import numpy as np

from chrysalis.gen.spec.config import PRESETS, Config, parse_override, with_overrides
from chrysalis.sim.golden import core_model as cm
from chrysalis.sim.golden import numerics as nx
from chrysalis.gen.spec.layout import Allocator, bank_count, tiles

__all__ = ["DEFAULT_SHAPES", "Case", "config_from_env", "shapes_from_env", "case_env",
           "f32"]

DEFAULT_SHAPES = ((5, 3, 2), (3, 7, 3))


def f32(values):
    """fp32 bit patterns (``uint64``) of ``values``."""
    return nx.from_float32(np.asarray(values, dtype=np.float32))


def config_from_env(environ=None):
    """The :class:`gen.spec.config.Config` described by the environment (see the module doc)."""
    environ = os.environ if environ is None else environ
    text = environ.get("CHRYSALIS_CONFIG", "").strip()
    if text:
        return Config.from_toml(text)
    preset = environ.get("CHRYSALIS_PRESET", "tiny")
    if preset not in PRESETS:
        raise ValueError(f"CHRYSALIS_PRESET must be one of {sorted(PRESETS)}, not {preset!r}")
    items = [item for item in environ.get("CHRYSALIS_OVERRIDES", "").replace(";", ",").split(",")
             if item.strip()]
    return with_overrides(PRESETS[preset], [parse_override(item) for item in items])


def _parse_shape(text):
    try:
        m, n, batch = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"a shape must look like MxNxB (e.g. 5x3x2), not {text!r}") from None
    if min(m, n, batch) < 1:
        raise ValueError(f"a shape must be positive, not {text!r}")
    return m, n, batch


def shapes_from_env(environ=None):
    """The ``(m, n, batch)`` shapes of ``CHRYSALIS_SHAPES`` (default :data:`DEFAULT_SHAPES`)."""
    environ = os.environ if environ is None else environ
    text = environ.get("CHRYSALIS_SHAPES", "").strip()
    if not text:
        return list(DEFAULT_SHAPES)
    return [_parse_shape(item.strip()) for item in text.split(",") if item.strip()]


def case_env(config, shapes, seed, report=None, lr=None):
    """Environment variables that make the testbench run ``shapes`` on ``config``."""
    env = {"CHRYSALIS_CONFIG": config.to_toml(),
           "CHRYSALIS_SHAPES": ",".join(f"{m}x{n}x{b}" for m, n, b in shapes),
           "CHRYSALIS_SEED": str(int(seed))}
    if report is not None:
        env["CHRYSALIS_REPORT"] = str(report)
    if lr is not None:
        env["CHRYSALIS_LR"] = repr(float(lr))
    return env


@dataclass(frozen=True)
class Case:
    """One layer on one core: its data, where it lives and what every operation must give.

    The data and the layout are those of ``tests/hw/test_core.py``: W normal, X like ReLU
    outputs (about half exact ``+0``, so the BACKWARD mask matters), dY normal / 2; the
    scratchpad holds W, W out, X, Y, dY, dX in that order; in the PEs' activation banks X
    starts at 0 and dY right after it.
    """

    config: Config
    m: int
    n: int
    batch: int
    seed: int = 1
    lr: float = 0.125

    @property
    def rows(self):
        return self.config.core.rows

    @property
    def cols(self):
        return self.config.core.cols

    @property
    def banks(self):
        return bank_count(self.rows, self.cols)

    @property
    def mt(self):
        return tiles(self.m, self.rows)

    @property
    def nt(self):
        return tiles(self.n, self.cols)

    @property
    def lr_bits(self):
        return int(f32([self.lr])[0])

    def data(self):
        """``(w, x, dy)`` as fp32 bit patterns, from the seed and the shape."""
        rng = np.random.default_rng([self.seed, self.m, self.n, self.batch])
        w = f32(rng.standard_normal((self.m, self.n)))
        x = f32(np.maximum(rng.standard_normal((self.n, self.batch)), 0))
        dy = f32(rng.standard_normal((self.m, self.batch)) * 0.5)
        return w, x, dy

    def layout(self):
        """``(matrices, act)``: scratchpad :class:`gen.spec.layout.Matrix` per name and the
        activation-bank bases of X and dY."""
        alloc = Allocator(self.config.core.scratchpad_words, self.banks)
        m, n, batch = self.m, self.n, self.batch
        mats = dict(w=alloc.matrix(m, n, "W"), w_out=alloc.matrix(m, n, "W out"),
                    x=alloc.matrix(n, batch, "X"), y=alloc.matrix(m, batch, "Y"),
                    dy=alloc.matrix(m, batch, "dY"), dx=alloc.matrix(n, batch, "dX"))
        act = dict(x=0, dy=self.nt * batch)
        if act["dy"] + self.mt * batch > self.config.pe.act_words:
            raise ValueError(f"{m}x{n}x{batch}: X and dY need {act['dy'] + self.mt * batch} "
                             f"activation words per PE; the PEs have {self.config.pe.act_words}")
        if self.mt * self.nt > self.config.pe.weight_words:
            raise ValueError(f"{m}x{n}: W needs {self.mt * self.nt} weight words per PE; the "
                             f"PEs have {self.config.pe.weight_words}")
        return mats, act

    def expected(self, w, x, dy):
        """The golden results (``sim.golden.core_model``): ``y`` (FORWARD with ReLU), ``dx``
        (BACKWARD with the ReLU mask of X) and ``w_new`` (WGRAD with ``-lr``)."""
        num = cm.CoreNumerics.from_config(self.config)
        y = cm.relu(num, cm.forward(num, w, x))
        dx = cm.relu_mask(num, cm.backward_dx(num, w, dy), x)
        w_new, _ = cm.update(num, w, cm.weight_gradient(num, dy, x), self.lr_bits)
        return dict(y=y, dx=dx, w_new=w_new)

    def mac_counts(self):
        """MAC and UPDATE compute slots each operation issues (every PE at once)."""
        mt, nt, batch = self.mt, self.nt, self.batch
        return dict(FORWARD=(mt * nt * batch, 0), BACKWARD=(mt * nt * batch, 0),
                    WGRAD=(mt * nt * batch, mt * nt))
