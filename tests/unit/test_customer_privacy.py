"""A customer identifier is personal data (SPEC §2 "The customer", docs/security.md, "Customer
data"): stage 1 keeps only its keyed hash, drops it without a key, and numbers are shown in the
clear only behind the web port's authentication."""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path

import bcrypt
import orjson
import pytest

from streams.config import ConfigError, customer_notice, load
from streams.core.customers import customer_hash
from streams.dev.local_pipeline import LocalPipeline
from streams.worker.web_security import web_guard
from tests.unit.helpers import CALLS, at, ev, settings

KEY = b"0123456789abcdef-customer-secret"
NUMBER = "+4930123456789"


def key_file(tmp_path: Path, data: bytes = KEY + b"\n") -> str:
    path = tmp_path / "customer.key"
    path.write_bytes(data)
    return str(path)


def test_the_hash_is_hmac_sha256_under_the_key_128_bits():
    expected = hmac.new(KEY, NUMBER.encode(), hashlib.sha256).hexdigest()[:32]
    assert customer_hash(KEY, NUMBER) == expected
    assert customer_hash(b"another key of 16+ bytes", NUMBER) != expected
    assert NUMBER not in expected and len(expected) == 32


def test_the_key_comes_from_a_file_and_never_shows(tmp_path: Path):
    s = load({"CCMON_CUSTOMER_KEY_FILE": key_file(tmp_path)})
    assert s.customer_key == KEY  # the trailing newline is not part of it
    assert s.kpi.customer_key == KEY
    assert KEY.decode() not in repr(s) and KEY.decode() not in repr(s.kpi)
    assert customer_notice(s) is None


@pytest.mark.parametrize(
    ("data", "needle"),
    [(b"short\n", "holds 5 bytes, at least 16"), (None, "cannot read")],
)
def test_a_bad_key_file_is_one_line(tmp_path: Path, data: bytes | None, needle: str):
    path = key_file(tmp_path, data) if data is not None else str(tmp_path / "missing.key")
    with pytest.raises(ConfigError) as err:
        load({"CCMON_CUSTOMER_KEY_FILE": path})
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_without_a_key_the_worker_says_so_in_one_line():
    line = customer_notice(load({}))
    assert line is not None and "CCMON_CUSTOMER_KEY_FILE" in line and "\n" not in line


def test_numbers_in_the_clear_need_a_key_and_the_web_ports_authentication(tmp_path: Path):
    with pytest.raises(ConfigError, match="needs CCMON_CUSTOMER_KEY_FILE"):
        load({"CCMON_CUSTOMER_SHOW_CLEAR": "true"})
    clear = {"CCMON_CUSTOMER_SHOW_CLEAR": "true", "CCMON_CUSTOMER_KEY_FILE": key_file(tmp_path)}
    with pytest.raises(ConfigError, match="needs the web port's authentication") as err:
        web_guard(load(clear))  # no web config at all
    assert "\n" not in str(err.value)
    headers_only = tmp_path / "web-headers.yml"
    headers_only.write_bytes(orjson.dumps({"http_server_config": {"headers": {"X-Frame-Options": "DENY"}}}))
    with pytest.raises(ConfigError, match="basic_auth_users"):
        web_guard(load({**clear, "CCMON_WEB_CONFIG_FILE": str(headers_only)}))
    users = tmp_path / "web-users.yml"
    users.write_bytes(
        orjson.dumps({"basic_auth_users": {"sup": bcrypt.hashpw(b"pw", bcrypt.gensalt(4)).decode()}})
    )
    guard, _ = web_guard(load({**clear, "CCMON_WEB_CONFIG_FILE": str(users)}))
    assert guard is not None


def rejected_and_accepted(p: LocalPipeline) -> list[bytes]:
    """Everything stage 1 wrote for one accepted and one rejected event naming the customer."""
    t0 = at("10:00:00")
    out = p.feed(
        [
            p.record(CALLS, ev("offered", "c1", t0, queue="sales", customer=NUMBER), key="c1"),
            p.record(CALLS, ev("ended", "c9", t0, customer=NUMBER), key="c9"),  # unknown contact
        ],
        now=t0 + 1,
    )
    assert len(out.dead) == 1
    written = [orjson.dumps(v) for _, (_, v) in out.writes.items()]
    facts = [orjson.dumps(rows) for rows in out.facts.values()]
    letter = orjson.loads(out.dead[0].to_json())
    return [*written, *facts, out.dead[0].to_json(), base64.b64decode(letter["value_b64"])]


def test_stage_1_writes_and_forwards_only_the_hash(tmp_path: Path):
    p = LocalPipeline(load({"CCMON_CUSTOMER_KEY_FILE": key_file(tmp_path)}))
    blobs = rejected_and_accepted(p)
    assert not any(NUMBER.encode() in b or NUMBER[1:].encode() in b for b in blobs)
    letter = orjson.loads(blobs[-1])
    assert letter["customer"] == customer_hash(KEY, NUMBER)
    assert letter["contact_id"] == "c9" and letter["type"] == "ended"  # the rest as it came


def test_without_a_key_the_customer_is_dropped_everywhere():
    p = LocalPipeline(settings())
    blobs = rejected_and_accepted(p)
    assert not any(NUMBER[1:].encode() in b for b in blobs)
    assert "customer" not in orjson.loads(blobs[-1])


def test_an_unreadable_event_naming_a_customer_is_not_copied_into_its_dead_letter():
    p = LocalPipeline(settings())
    raw = b'{"customer": "' + NUMBER.encode() + b'", "type": '  # cut short: not JSON
    out = p.feed([p.record(CALLS, raw, key="c1")], now=at("10:00:00"))
    value = base64.b64decode(orjson.loads(out.dead[0].to_json())["value_b64"])
    assert NUMBER.encode() not in value and b"redacted" in value
