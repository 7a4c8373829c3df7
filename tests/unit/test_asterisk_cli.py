"""``ccmon ingest asterisk`` usage errors: one line, exit 2, before anything connects; the state file."""

from __future__ import annotations

from pathlib import Path

import pytest

from producers.sources.asterisk.ingest import load_state, save_state
from producers.sources.asterisk.options import wrapup_rule
from streams.cli.main import main
from streams.errors import CcmonError


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--queue-log", "/no/such/queue_log"], "queue_log /no/such/queue_log does not exist"),
        ([], "give exactly one input: --queue-log FILE or --database URL"),
        (["--queue-log", "x", "--database", "postgresql://h/db"], "give exactly one input"),
        (
            ["--queue-log", "{log}", "--wrapup", "sales=abc"],
            "--wrapup 'sales=abc': expected SECONDS or QUEUE=SECONDS",
        ),
        (["--queue-log", "{log}", "--wrapup", "-5"], "seconds must be between 0 and 3600"),
        (["--queue-log", "{log}", "--agent-name-pattern", "(unclosed"], "--agent-name-pattern: missing )"),
        (
            ["--queue-log", "{log}", "--timezone", "Mars/Olympus"],
            "--timezone 'Mars/Olympus' is not a known time zone",
        ),
        (["--queue-log", "{log}", "--source", "two words"], "--source 'two words'"),
        (
            ["--queue-log", "{log}", "--state-file", "/no/such/dir/state"],
            "directory /no/such/dir does not exist",
        ),
        (["--database", "mysql://asterisk@db/asterisk"], "--database takes a postgresql://"),
    ],
)
def test_bad_usage_is_one_line_and_exit_2(argv, message, tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setenv("CCMON_BROKER", "kafka://127.0.0.1:1")  # nothing may try to reach it
    log = tmp_path / "queue_log"
    log.write_text("")
    code = main(["ingest", "asterisk", *(a.replace("{log}", str(log)) for a in argv)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err and "Traceback" not in err, err


def test_wrapup_rule_default_and_per_queue():
    assert wrapup_rule(["30", "sales=10", "vip=0"]) == (30.0, (("sales", 10.0), ("vip", 0.0)))
    assert wrapup_rule([]) == (0.0, ())


def test_the_state_file_is_replaced_whole_and_checked_against_its_input(tmp_path: Path):
    path = tmp_path / "state.json"
    save_state(path, {"version": 1, "kind": "file", "source": "asterisk", "position": {"offset": 5}})
    assert load_state(path, "file", "asterisk")["position"] == {"offset": 5}
    assert not (tmp_path / "state.json.tmp").exists()
    with pytest.raises(CcmonError, match="belongs to another input"):
        load_state(path, "table", "asterisk")
    path.write_text("{half")
    with pytest.raises(CcmonError, match="unreadable"):
        load_state(path, "file", "asterisk")
    assert load_state(tmp_path / "missing.json", "file", "asterisk") == {}
    with pytest.raises(CcmonError, match="cannot save the state file"):
        save_state(tmp_path / "no-such-dir" / "state.json", {})


def test_the_state_is_never_written_through_a_planted_symlink(tmp_path: Path):
    """The temporary file was ``state.json.tmp``, opened with O_TRUNC: a symlink planted there by
    another local user made the ingester overwrite the file it points to."""
    victim = tmp_path / "victim"
    victim.write_text("precious")
    path = tmp_path / "state.json"
    (tmp_path / "state.json.tmp").symlink_to(victim)
    save_state(path, {"version": 1, "kind": "file", "source": "asterisk"})
    assert victim.read_text() == "precious"
    assert not path.is_symlink() and load_state(path, "file", "asterisk")["kind"] == "file"
    path.unlink()
    path.symlink_to(victim)  # a symlink at the state's own name is replaced, not written through
    save_state(path, {"version": 1, "kind": "file", "source": "asterisk"})
    assert victim.read_text() == "precious" and not path.is_symlink()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.json", "state.json.tmp", "victim"]


@pytest.mark.parametrize(
    "doc",
    [
        b"[1, 2]",
        b'"text"',
        b'{"version": 1, "kind": "file", "source": "asterisk", "position": {"offset": "x"}}',
        b'{"version": 1, "kind": "file", "source": "asterisk", "position": [1]}',
        b'{"version": 1, "kind": "file", "source": "asterisk", "mapping": {"calls": []}}',
        b'{"version": 1, "kind": "file", "source": "asterisk", "mapping": {"calls": {"c": {"q": {}}}}}',
    ],
)
def test_a_state_file_of_the_wrong_shape_is_one_line_and_exit_2(
    doc: bytes, tmp_path: Path, capsys, monkeypatch
):
    monkeypatch.setenv("CCMON_BROKER", "kafka://127.0.0.1:1")  # checked before anything connects
    log = tmp_path / "queue_log"
    log.write_text("")
    state = tmp_path / "state.json"
    state.write_bytes(doc)
    code = main(["ingest", "asterisk", "--queue-log", str(log), "--state-file", str(state)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    assert f"state file {state}" in err


def test_the_database_password_comes_from_a_file_never_the_command_line(tmp_path: Path, monkeypatch):
    from producers.sources.asterisk.realtime import RealtimeTable

    secret = tmp_path / "pg-password"
    secret.write_text("s3cret\n")
    calls: list[tuple[str, dict]] = []

    class FakeDriver:  # stands in for psycopg's module: only connect() is used
        Error = Exception

        @staticmethod
        def connect(url: str, **kw: object) -> object:
            calls.append((url, dict(kw)))
            return object()

    table = RealtimeTable("postgresql://asterisk@db/asterisk", "queue_log", 0, password_file=secret)
    table._psycopg = FakeDriver  # type: ignore[assignment]
    table.connect()
    assert calls[0][0] == "postgresql://asterisk@db/asterisk" and calls[0][1]["password"] == "s3cret"
    table._conn = None
    no_file = RealtimeTable("postgresql://asterisk@db/asterisk", "queue_log", 0)
    no_file._psycopg = FakeDriver  # type: ignore[assignment]
    no_file.connect()  # libpq's own places (PGPASSWORD, ~/.pgpass): no password given by ccmon
    assert "password" not in calls[1][1]


def test_a_missing_password_file_is_one_line_and_exit_2(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.setenv("CCMON_BROKER", "kafka://127.0.0.1:1")
    monkeypatch.setenv("CCMON_PG_PASSWORD_FILE", str(tmp_path / "nope"))
    code = main(["ingest", "asterisk", "--database", "postgresql://asterisk@db/asterisk"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "CCMON_PG_PASSWORD_FILE" in err, err
