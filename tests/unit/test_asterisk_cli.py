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
