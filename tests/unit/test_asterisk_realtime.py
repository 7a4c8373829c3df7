"""The realtime table's rows as queue_log lines: the forms of ``time`` and its time zone."""

from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from producers.sources.asterisk.queue_log import Malformed, parse
from producers.sources.asterisk.realtime import as_line, epoch

PARIS = ZoneInfo("Europe/Paris")
T = datetime(2026, 11, 23, 21, 0, 5, tzinfo=timezone.utc).timestamp()  # 22:00:05 in Paris (UTC+1)


@pytest.mark.parametrize("value", [
    datetime(2026, 11, 23, 22, 0, 5),  # timestamp without time zone: local time
    datetime(2026, 11, 23, 21, 0, 5, tzinfo=timezone.utc),  # timestamptz
    "2026-11-23 22:00:05", "2026-11-23 22:00:05.000000", "2026-11-23T21:00:05+00:00",
    int(T), str(int(T)),
])
def test_every_form_of_time_is_the_same_instant(value):
    assert epoch(value, PARIS) == T


def test_a_row_is_the_file_line_and_an_unreadable_time_is_malformed():
    row = (7, datetime(2026, 11, 23, 22, 0, 5), "1700.1", "sales", "PJSIP/400", "CONNECT", "8", "1700.2", "3", None, "")
    assert as_line(row, PARIS) == f"{int(T)}|1700.1|sales|PJSIP/400|CONNECT|8|1700.2|3"
    assert parse(as_line(row, PARIS)).data == ("8", "1700.2", "3")
    with pytest.raises(Malformed, match="integer epoch"):
        parse(as_line((8, "yesterday", "c", "q", "NONE", "ABANDON", "1", "1", "2", "", ""), PARIS))
