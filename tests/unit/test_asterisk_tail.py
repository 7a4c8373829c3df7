"""Following queue_log through rename rotation, copytruncate, restarts and partial lines (real files)."""

from __future__ import annotations

import os
from pathlib import Path

from producers.sources.asterisk.tail import Position, QueueLogReader


def drain(r: QueueLogReader) -> list[bytes]:
    """Everything readable now, following rotations, like the ingester's loop does."""
    got: list[bytes] = []
    while True:
        batch = r.read()
        got += [line for line, _ in batch]
        if not batch and not r.follow_rotation():
            return got


def append(path: Path, *lines: str) -> None:
    with open(path, "a") as f:
        f.write("".join(f"{t}\n" for t in lines))


def test_reads_complete_lines_only_and_positions_point_after_each(tmp_path: Path):
    log = tmp_path / "queue_log"
    log.write_text("1|a|q|NONE|ENTERQUEUE||1|1\n2|a|q|NONE|ABAN")
    r = QueueLogReader(log)
    batch = r.read()
    assert [line for line, _ in batch] == [b"1|a|q|NONE|ENTERQUEUE||1|1"]
    assert batch[0][1].offset == len("1|a|q|NONE|ENTERQUEUE||1|1\n")
    with open(log, "a") as f:
        f.write("DON|1|1|1\n")
    assert [line for line, _ in r.read()] == [b"2|a|q|NONE|ABANDON|1|1|1"]
    assert r.rest() is None


def test_rename_rotation_reads_the_old_file_to_its_end_then_the_new_one(tmp_path: Path):
    log = tmp_path / "queue_log"
    append(log, "1|a|q|NONE|ENTERQUEUE||1|1")
    r = QueueLogReader(log)
    assert drain(r) == [b"1|a|q|NONE|ENTERQUEUE||1|1"]
    append(log, "2|a|q|NONE|ABANDON|1|1|1")  # written, then rotated before the reader saw it
    os.rename(log, tmp_path / "queue_log.0")  # logrotate / Asterisk's `logger rotate`
    assert drain(r) == [b"2|a|q|NONE|ABANDON|1|1|1"]  # no new file yet: keep waiting
    append(log, "3|b|q|NONE|ENTERQUEUE||1|1")
    assert drain(r) == [b"3|b|q|NONE|ENTERQUEUE||1|1"]
    assert r.rotations == 1


def test_copytruncate_starts_again_from_the_start_even_when_the_file_regrew(tmp_path: Path):
    log = tmp_path / "queue_log"
    append(log, "1|a|q|NONE|ENTERQUEUE||1|1", "2|a|q|NONE|ABANDON|1|1|1")
    r = QueueLogReader(log)
    assert len(drain(r)) == 2
    (tmp_path / "queue_log.1").write_bytes(log.read_bytes())
    with open(log, "r+") as f:
        f.truncate(0)
    append(log, "3|b|q|NONE|ENTERQUEUE||1|1")
    assert drain(r) == [b"3|b|q|NONE|ENTERQUEUE||1|1"]
    # truncated and regrown past the old offset before the reader looked: the first bytes tell it
    with open(log, "r+") as f:
        f.truncate(0)
    append(log, "4|c|q|NONE|ENTERQUEUE||1|1", "5|c|q|NONE|ABANDON|1|1|1", "6|d|q|NONE|ENTERQUEUE||1|1")
    assert drain(r) == [
        b"4|c|q|NONE|ENTERQUEUE||1|1",
        b"5|c|q|NONE|ABANDON|1|1|1",
        b"6|d|q|NONE|ENTERQUEUE||1|1",
    ]
    assert r.rotations == 2


def test_a_restart_resumes_at_the_saved_position_and_finds_a_file_rotated_meanwhile(tmp_path: Path):
    log = tmp_path / "queue_log"
    append(log, *(f"{i}|c{i}|q|NONE|ENTERQUEUE||1|1" for i in range(1, 101)))
    r = QueueLogReader(log)
    batch = r.read(max_lines=40)
    saved = Position.from_state(batch[-1][1].to_state())
    assert saved is not None
    r.close()
    r = QueueLogReader(log, saved)
    assert r.notes == [f"resuming {log} at byte {saved.offset}"]
    assert drain(r)[0] == b"41|c41|q|NONE|ENTERQUEUE||1|1"
    # stopped after 40 lines again; meanwhile the file was rotated and a new one started
    r.close()
    os.rename(log, tmp_path / "queue_log.0")
    append(log, "200|z|q|NONE|ENTERQUEUE||1|1")
    r = QueueLogReader(log, saved)
    got = drain(r)
    assert got[0] == b"41|c41|q|NONE|ENTERQUEUE||1|1" and got[59] == b"100|c100|q|NONE|ENTERQUEUE||1|1"
    assert got[60:] == [b"200|z|q|NONE|ENTERQUEUE||1|1"] and len(got) == 61


def test_a_saved_position_whose_file_is_gone_starts_over_and_says_so(tmp_path: Path):
    log = tmp_path / "queue_log"
    append(log, "1|a|q|NONE|ENTERQUEUE||1|1")
    saved = QueueLogReader(log).read()[-1][1]
    log.unlink()
    append(log, "7|b|q|NONE|ENTERQUEUE||1|1", "8|b|q|NONE|ABANDON|1|1|1")
    r = QueueLogReader(log, saved)
    assert "reading" in r.notes[0] and "from the start" in r.notes[0]
    assert drain(r) == [b"7|b|q|NONE|ENTERQUEUE||1|1", b"8|b|q|NONE|ABANDON|1|1|1"]


def test_a_line_longer_than_the_maximum_is_skipped_and_each_byte_searched_once(tmp_path: Path):
    """A 64 MiB line took 60 s when every new chunk re-searched the whole buffer: now the search
    resumes where it stopped (work linear in the size) and the over-long line is dropped as it comes."""
    log = tmp_path / "queue_log"
    first, last = b"1|a|q|NONE|ENTERQUEUE||1|1", b"2|a|q|NONE|ABANDON|1|1|1"
    with open(log, "wb") as f:
        f.write(first + b"\n" + b"x" * (8 << 20) + b"\n" + last + b"\n")
    r = QueueLogReader(log)
    assert drain(r) == [first, last]
    size = log.stat().st_size
    assert r.too_long == 1
    assert r.scanned <= size  # quadratic re-scanning searched ~ size**2 / CHUNK / 2 bytes (512 MiB)
    assert r.position.offset == size
    assert len(r._buf) <= r.max_line + (1 << 16)  # never more than one line plus one chunk held


def test_an_over_long_last_line_without_newline_is_skipped_too(tmp_path: Path):
    log = tmp_path / "queue_log"
    log.write_bytes(b"1|a|q|NONE|ENTERQUEUE||1|1\n" + b"y" * 300)
    r = QueueLogReader(log, max_line=100)
    assert drain(r) == [b"1|a|q|NONE|ENTERQUEUE||1|1"]
    assert r.rest() is None and r.too_long == 1
    assert r.position.offset == log.stat().st_size


def test_a_line_of_exactly_the_maximum_is_a_line(tmp_path: Path):
    log = tmp_path / "queue_log"
    log.write_bytes(b"z" * 100 + b"\n" + b"w" * 101 + b"\nend\n")
    r = QueueLogReader(log, max_line=100)
    assert drain(r) == [b"z" * 100, b"end"] and r.too_long == 1
