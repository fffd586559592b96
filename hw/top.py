"""The top-level component that ``chrysalis verilog`` emits for a config."""

from chrysalis.gen.spec.config import Config

__all__ = ["build_top"]


def build_top(config):
    """The top-level component for ``config``: the accelerator (``hw.accelerator``), one
    training core behind an AXI4-Lite register slave and an AXI4 DMA master."""
    if not isinstance(config, Config):
        raise TypeError(f"config must be a Config, not {config!r}")
    from chrysalis.hw.accelerator import Accelerator
    return Accelerator(config)
