"""The top-level component that ``chrysalis verilog`` emits for a config."""

from gen.config import Config

__all__ = ["build_top"]


def build_top(config):
    """The top-level component for ``config``.

    At this stage of the project the top level is one training core (``hw.core.Core``):
    its command port, its host port to the scratchpad and its counters. The cluster and
    the AXI host interface wrap it as they land.
    """
    if not isinstance(config, Config):
        raise TypeError(f"config must be a Config, not {config!r}")
    from hw.core import Core
    return Core(config)
