"""Parameter checks shared by the floating-point units."""

from chrysalis.gen.spec.formats import FloatFormat

__all__ = ["check_format", "check_latency"]


def check_format(name, fmt):
    if not isinstance(fmt, FloatFormat):
        raise TypeError(f"{name} must be a FloatFormat, not {fmt!r}")
    return fmt


def check_latency(latency):
    if not isinstance(latency, int) or isinstance(latency, bool) or latency < 0:
        raise ValueError(f"Latency must be a non-negative integer, not {latency!r}")
    return latency
