"""The top-level component that ``chrysalis verilog`` emits for a config."""

from gen.config import Config

__all__ = ["build_top"]


def build_top(config):
    """The top-level component for ``config``.

    At this stage of the project the top level is the floating-point MAC of the config's
    PE (operand and accumulator formats, pipeline latency); the core, the cluster and the
    host interface replace it as they land.
    """
    if not isinstance(config, Config):
        raise TypeError(f"config must be a Config, not {config!r}")
    from hw.mac import FloatMAC
    mac = config.mac
    return FloatMAC(mac.operand, mac.accumulator, latency=mac.latency)
