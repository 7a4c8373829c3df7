"""KPI formulas of SPEC §2 over a window's sums. ``None`` means undefined (nothing to divide by)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "ABANDONED",
    "ANSWERED",
    "CES_N",
    "CES_SUM",
    "CSAT_N",
    "CSAT_POS",
    "DEQUEUED",
    "FCR_N",
    "FCR_YES",
    "FR_N",
    "FR_SUM",
    "LOST_N",
    "OFCR_N",
    "OFCR_YES",
    "RECOVERED_N",
    "REPEAT_N",
    "RES_N",
    "RES_SUM",
    "operational_fcr",
    "recovery",
    "repeat",
    "resolution",
    "HANDLED",
    "HANDLE_SUM",
    "IN_THRESHOLD",
    "MISSED",
    "NPS_DETRACTORS",
    "NPS_N",
    "NPS_PROMOTERS",
    "OFFERED",
    "SHORT",
    "WAIT_SUM",
    "WIDTH",
    "abandon_ratio",
    "aht",
    "asa",
    "ces",
    "csat",
    "fcr",
    "first_response",
    "nps",
    "padded",
    "service_level",
]

# Layout of a window vector: the sums one event-time bucket (or one day) accumulates. New sums go
# at the end: records written before they existed are shorter and read as 0 there (``padded``).
OFFERED, ANSWERED, ABANDONED, SHORT, IN_THRESHOLD, WAIT_SUM, HANDLED, HANDLE_SUM = range(8)
CSAT_N, CSAT_POS, NPS_N, NPS_PROMOTERS, NPS_DETRACTORS, FCR_N, FCR_YES = range(8, 15)
DEQUEUED, MISSED, CES_N, CES_SUM = range(15, 19)
FR_N, FR_SUM = range(19, 21)  #: first responses and the sum of their times
#: the customer behind the contacts (SPEC §2 "The customer"): repeats, abandons recovered and
#: lost, operational FCR decided and resolved, resolutions and the sum of their times
REPEAT_N, RECOVERED_N, LOST_N, OFCR_N, OFCR_YES, RES_N, RES_SUM = range(21, 28)
WIDTH = 28


def padded(v: list[float]) -> list[float]:
    """A window vector of the current width (an older worker's records are shorter)."""
    if len(v) < WIDTH:
        v.extend([0] * (WIDTH - len(v)))
    return v


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def abandon_ratio(v: Sequence[float]) -> float | None:
    """(abandoned − short) / (answered + abandoned − short): dequeued contacts are not abandons."""
    counted = v[ABANDONED] - v[SHORT]
    return _ratio(counted, v[ANSWERED] + counted)


def service_level(v: Sequence[float]) -> float | None:
    """answered within T (inclusive) / (answered + abandoned − short + dequeued): a dequeued
    contact was not served within T, so it counts against the service level."""
    return _ratio(v[IN_THRESHOLD], v[ANSWERED] + v[ABANDONED] - v[SHORT] + v[DEQUEUED])


def asa(v: Sequence[float]) -> float | None:
    return _ratio(v[WAIT_SUM], v[ANSWERED])


def aht(v: Sequence[float]) -> float | None:
    return _ratio(v[HANDLE_SUM], v[HANDLED])


def csat(v: Sequence[float]) -> float | None:
    """Share of csat answers >= 4."""
    return _ratio(v[CSAT_POS], v[CSAT_N])


def nps(v: Sequence[float]) -> float | None:
    """% promoters (9-10) − % detractors (0-6), from −100 to 100."""
    n = v[NPS_N]
    return 100.0 * (v[NPS_PROMOTERS] - v[NPS_DETRACTORS]) / n if n > 0 else None


def fcr(v: Sequence[float]) -> float | None:
    """Share of surveys with resolved = true among those that carry ``resolved``."""
    return _ratio(v[FCR_YES], v[FCR_N])


def ces(v: Sequence[float]) -> float | None:
    """Mean of the ces answers (1-7, 7 = very easy)."""
    return _ratio(v[CES_SUM], v[CES_N])


def first_response(v: Sequence[float]) -> float | None:
    """Mean first response time (``responded.ts − offered.ts`` of the segment)."""
    return _ratio(v[FR_SUM], v[FR_N])


def repeat(v: Sequence[float]) -> float | None:
    """Repeat ratio: repeat contacts / offered contacts."""
    return _ratio(v[REPEAT_N], v[OFFERED])


def recovery(v: Sequence[float]) -> float | None:
    """Abandon recovery ratio: recovered / (recovered + lost)."""
    return _ratio(v[RECOVERED_N], v[RECOVERED_N] + v[LOST_N])


def operational_fcr(v: Sequence[float]) -> float | None:
    """Operational FCR: handled contacts with no new contact within R / those decided."""
    return _ratio(v[OFCR_YES], v[OFCR_N])


def resolution(v: Sequence[float]) -> float | None:
    """Mean resolution time of the cases resolved in the window."""
    return _ratio(v[RES_SUM], v[RES_N])
