"""Erlang C staffing: how many agents a queue needs to meet its service-level target."""

from __future__ import annotations

import math

__all__ = [
    "agents_required",
    "erlang_c",
    "service_level",
]

#: Never search beyond this many agents above the traffic; a queue needing more is absurd input.
MAX_EXTRA_AGENTS = 10_000


def erlang_c(agents: int, traffic: float) -> float:
    """Probability that a contact has to wait (Erlang C), for ``agents`` > ``traffic`` erlangs.

    Computed through the Erlang B recursion, which stays numerically stable for large N
    (the factorial form overflows past a few hundred agents).
    """
    if traffic <= 0:
        return 0.0
    if agents <= traffic:
        return 1.0
    b = 1.0
    for n in range(1, agents + 1):
        b = traffic * b / (n + traffic * b)
    return agents * b / (agents - traffic * (1.0 - b))


def service_level(agents: int, traffic: float, aht_s: float, threshold_s: float) -> float:
    """Share of contacts answered within ``threshold_s`` with ``agents`` agents."""
    if agents <= traffic:
        return 0.0
    return 1.0 - erlang_c(agents, traffic) * math.exp(-(agents - traffic) * threshold_s / aht_s)


def agents_required(offered: float, period_s: float, aht_s: float, threshold_s: float, target: float) -> int:
    """Smallest N > A meeting ``target``, where A = offered / period × AHT (erlangs).

    No traffic needs no agents: 0 is returned when nothing was offered.
    """
    if aht_s <= 0 or period_s <= 0:
        raise ValueError("aht_s and period_s must be positive")
    traffic = offered / period_s * aht_s
    if traffic <= 0:
        return 0
    n = math.floor(traffic) + 1
    limit = n + MAX_EXTRA_AGENTS
    while n < limit:
        if service_level(n, traffic, aht_s, threshold_s) >= target:
            return n
        n += 1
    return n
