import math

import pytest

from streams.core.erlang import agents_required, erlang_c, service_level


def test_textbook_case():
    """100 contacts per 30 min, AHT 180 s, T = 20 s: A = 10 erlangs; 14 agents give
    waiting probability 0.17413 and service level 0.88835 (the classic worked example)."""
    traffic = 100 / 1800 * 180
    assert traffic == pytest.approx(10.0)
    assert erlang_c(14, traffic) == pytest.approx(0.17413, abs=5e-6)
    assert service_level(14, traffic, 180, 20) == pytest.approx(0.88835, abs=5e-6)
    # 13 agents give 0.7160 (< 0.8), so 14 is the smallest meeting an 80 % target
    assert service_level(13, traffic, 180, 20) < 0.8
    assert agents_required(100, 1800, 180, 20, 0.8) == 14


def test_erlang_c_against_factorial_formula():
    a, n = 7.5, 10
    top = a**n / math.factorial(n) * n / (n - a)
    bottom = sum(a**k / math.factorial(k) for k in range(n)) + top
    assert erlang_c(n, a) == pytest.approx(top / bottom, rel=1e-12)


def test_no_traffic_needs_no_agents_and_large_traffic_is_stable():
    assert agents_required(0, 900, 180, 20, 0.8) == 0
    big = agents_required(9000, 900, 300, 20, 0.9)  # 3000 erlangs
    assert 3000 < big < 3200
    assert erlang_c(5, 5.0) == 1.0


def test_invalid_arguments():
    with pytest.raises(ValueError):
        agents_required(10, 900, 0, 20, 0.8)
