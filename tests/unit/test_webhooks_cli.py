"""``ccmon ingest webhooks`` configuration mistakes: one line, exit 2, before anything listens or
connects; the secret from a file or the environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from producers.sources.webhooks.options import platforms
from streams.cli.main import main


@pytest.mark.parametrize(
    "env, message",
    [
        ({}, "no platform enabled"),
        ({"CCMON_WEBHOOKS_PLATFORMS": "zendesk"}, "unknown platform 'zendesk'"),
        ({"CCMON_WEBHOOKS_PLATFORMS": "chatwoot"}, "platform chatwoot: set CCMON_WEBHOOKS_CHATWOOT_SECRET"),
        (
            {"CCMON_WEBHOOKS_CHATWOOT_SECRET": "s", "CCMON_WEBHOOKS_CHATWOOT_SECRET_FILE": "/x"},
            "both set",
        ),
        ({"CCMON_WEBHOOKS_CHATWOOT_SECRET_FILE": "/no/such/secret"}, "cannot read it"),
        (
            {"CCMON_WEBHOOKS_CHATWOOT_SECRET": "s", "CCMON_WEBHOOKS_CHATWOOT_QUEUE_BY": "moon"},
            "inbox or team",
        ),
        ({"CCMON_WEBHOOKS_LIBREDESK_SECRET": "s", "CCMON_WEBHOOKS_PORT": "70000"}, "between 0 and 65535"),
        ({"CCMON_WEBHOOKS_LIBREDESK_SECRET": "s", "CCMON_WEBHOOKS_MAX_BODY": "big"}, "not an integer"),
    ],
)
def test_bad_configuration_is_one_line_and_exit_2(env: dict, message: str, capsys, monkeypatch):
    monkeypatch.setenv("CCMON_BROKER", "kafka://127.0.0.1:1")  # nothing may try to reach it
    for name in [k for k in os.environ if k.startswith("CCMON_WEBHOOKS_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    code = main(["ingest", "webhooks"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and message in err and "Traceback" not in err, err


def test_the_secret_file_is_read_and_only_configured_platforms_are_enabled(tmp_path: Path):
    secret = tmp_path / "cw"
    secret.write_text("from-a-file\n")
    enabled = platforms(
        {"CCMON_WEBHOOKS_CHATWOOT_SECRET_FILE": str(secret), "CCMON_WEBHOOKS_CHATWOOT_SOURCE": "acme"}
    )
    assert list(enabled) == ["chatwoot"]
    assert enabled["chatwoot"].config.secret == b"from-a-file"
    assert enabled["chatwoot"].config.options == {"source": "acme"}
