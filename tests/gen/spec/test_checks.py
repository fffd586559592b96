"""The shared small rules (``gen.spec.checks``) agree with Amaranth's and refuse bad input."""

import numpy as np
import pytest
from amaranth.utils import ceil_log2 as amaranth_ceil_log2
from amaranth.utils import exact_log2 as amaranth_exact_log2

from chrysalis.gen.spec.checks import ceil_div, ceil_log2, exact_log2, is_int, is_real


def test_logs_equal_amaranths():
    for n in range(1, 5000):
        assert ceil_log2(n) == amaranth_ceil_log2(n)
    for k in range(40):
        assert exact_log2(1 << k) == amaranth_exact_log2(1 << k)


@pytest.mark.parametrize("bad", [0, -1, 2.0, True])
def test_logs_refuse_what_is_not_a_positive_integer(bad):
    with pytest.raises(ValueError, match=f"not {bad!r}"):
        ceil_log2(bad)


@pytest.mark.parametrize("bad", [0, 3, 12, 2.0])
def test_exact_log2_refuses_what_is_not_a_power_of_two(bad):
    with pytest.raises(ValueError, match="power of two"):
        exact_log2(bad)


def test_integers_and_reals():
    assert is_int(3) and is_int(np.int64(3)) and not is_int(True) and not is_int(3.0)
    assert not is_int(np.bool_(True))
    assert is_real(2.5) and is_real(np.float32(1)) and not is_real(False) and not is_real("1")
    assert [ceil_div(a, 4) for a in (0, 1, 4, 5, 8)] == [0, 1, 1, 2, 2]
