"""The web config file (the exporter toolkit's format), the basic-auth middleware and its cache, the
response headers, and the Kafka settings that would expose or ignore a password."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import ssl
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from streams.cli.main import main
from streams.config import ConfigError, load
from streams.worker.web_security import Guard, inline_hashes, load_web_config, page_csp
from tests.unit.helpers import make_tls

HASH = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode()


def write(tmp: Path, doc: Any) -> str:
    path = tmp / "web.yml"
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return str(path)


def tls_doc(tmp: Path, **extra: Any) -> dict:
    files = make_tls(tmp)
    return {"cert_file": str(files.cert), "key_file": str(files.key), **extra}


def test_a_full_file_gives_tls_with_client_certificates_users_and_headers(tmp_path: Path):
    files = make_tls(tmp_path)
    doc = {
        "tls_server_config": {
            "cert_file": "server.pem",  # relative to the file, as the toolkit resolves it
            "key_file": "server-key.pem",
            "client_ca_file": str(files.ca),
            "client_auth_type": "RequireAndVerifyClientCert",
            "min_version": "TLS13",
        },
        "http_server_config": {"http2": True, "headers": {"x-frame-options": "deny"}},
        "basic_auth_users": {"prometheus": HASH},
    }
    config = load_web_config(write(tmp_path, doc))
    assert config.ssl_context is not None
    assert config.ssl_context.verify_mode == ssl.CERT_REQUIRED
    assert config.ssl_context.minimum_version == ssl.TLSVersion.TLSv1_3
    assert config.users == {"prometheus": HASH.encode()}
    assert config.headers == {"X-Frame-Options": "deny"}
    plain = load_web_config(write(tmp_path, {"basic_auth_users": {"p": HASH}}))
    assert plain.ssl_context is None and plain.users == {"p": HASH.encode()}
    tls_only = load_web_config(write(tmp_path, {"tls_server_config": tls_doc(tmp_path)}))
    assert tls_only.ssl_context is not None and tls_only.ssl_context.verify_mode == ssl.CERT_NONE
    assert tls_only.ssl_context.minimum_version == ssl.TLSVersion.TLSv1_2 and not tls_only.users
    inline_ca = tls_doc(tmp_path, client_ca=files.ca.read_text(), client_auth_type="VerifyClientCertIfGiven")
    optional = load_web_config(write(tmp_path, {"tls_server_config": inline_ca}))
    assert optional.ssl_context is not None and optional.ssl_context.verify_mode == ssl.CERT_OPTIONAL


@pytest.mark.parametrize(
    "doc, needle",
    [
        ("tls_server_config: [unclosed", "not valid YAML at line 1"),
        ("- a list", "the file must be a mapping"),
        ({"rate_limit": {"interval": "1s", "burst": 2}}, "rate_limit is not supported"),
        ({"basic_auth": {}}, "unknown key basic_auth"),
        ({"basic_auth_users": {"p": "plain-text"}}, "basic_auth_users.p: not a bcrypt hash"),
        ({"basic_auth_users": ["p"]}, "basic_auth_users must be a mapping"),
        ({"tls_server_config": {"cert_file": "x.pem"}}, "needs both cert_file and key_file"),
        ({"tls_server_config": {"cert": "PEM", "key": "PEM"}}, "inline certificates are not supported"),
        ({"tls_server_config": "TLS_CIPHERS"}, "cipher_suites (Go's names) is not supported"),
        ({"tls_server_config": "TLS"}, "tls_server_config must be a mapping"),
        ({"tls_server_config": "TLS_SANS"}, "client_allowed_sans is not supported"),
        ({"tls_server_config": "TLS_ANY"}, "client_auth_type 'RequireAnyClientCert' is not supported"),
        ({"tls_server_config": "TLS_NO_CA"}, "needs client_ca_file"),
        ({"tls_server_config": "TLS_CA_NO_AUTH"}, "client_auth_type is NoClientCert"),
        ({"tls_server_config": "TLS_VERSION"}, "min_version 'SSL3'"),
        ({"tls_server_config": "TLS_ORDER"}, "min_version is above max_version"),
        ({"tls_server_config": "TLS_MISSING"}, "cannot load the TLS files (No such file or directory)"),
        ({"http_server_config": {"headers": {"Set-Cookie": "a=b"}}}, "headers.Set-Cookie: ccmon sets only"),
        ({"http_server_config": {"headers": {"X-Frame-Options": "deny\r\nX: y"}}}, "one-line string"),
        ({"http_server_config": {"http2": "yes"}}, "http2 must be true or false"),
    ],
)
def test_a_bad_file_is_one_line_naming_the_file_and_the_key(tmp_path: Path, doc: Any, needle: str):
    tls = {
        "TLS_CIPHERS": {"cert_file": "a", "key_file": "b", "cipher_suites": []},
        "TLS_SANS": tls_doc(tmp_path, client_allowed_sans=["x"]),
        "TLS_ANY": tls_doc(tmp_path, client_auth_type="RequireAnyClientCert"),
        "TLS_NO_CA": tls_doc(tmp_path, client_auth_type="VerifyClientCertIfGiven"),
        "TLS_CA_NO_AUTH": tls_doc(tmp_path, client_ca_file=str(tmp_path / "ca.pem")),
        "TLS_VERSION": tls_doc(tmp_path, min_version="SSL3"),
        "TLS_ORDER": tls_doc(tmp_path, min_version="TLS13", max_version="TLS12"),
        "TLS_MISSING": {"cert_file": "absent.pem", "key_file": "absent-key.pem"},
    }
    if isinstance(doc, dict) and isinstance(doc.get("tls_server_config"), str):  # made here: files
        doc = {"tls_server_config": tls.get(doc["tls_server_config"], doc["tls_server_config"])}
    path = write(tmp_path, doc)
    with pytest.raises(ConfigError) as err:
        load_web_config(path)
    message = str(err.value)
    assert needle in message and path in message and "\n" not in message, message


def auth(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth_checks_bcrypt_once_per_credential_and_never_caches_a_failure(tmp_path: Path):
    guard = Guard(load_web_config(write(tmp_path, {"basic_auth_users": {"prometheus": HASH}})), "csp")

    async def check() -> None:
        assert not await guard.authorized(None)
        assert not await guard.authorized("Bearer abc")
        assert not await guard.authorized("Basic !!!")
        assert guard.bcrypt_runs == 0  # malformed: refused before any hashing
        assert all(await asyncio.gather(*(guard.authorized(auth("prometheus", "s3cret")) for _ in range(20))))
        assert guard.bcrypt_runs == 1  # 20 at once: one bcrypt, the others wait for its result
        assert all(await asyncio.gather(*(guard.authorized(auth("prometheus", "s3cret")) for _ in range(50))))
        assert guard.bcrypt_runs == 1  # the cache: one bcrypt for 70 scrapes
        for _ in range(3):
            assert not await guard.authorized(auth("prometheus", "wrong"))
        assert guard.bcrypt_runs == 4  # every wrong password costs a bcrypt run
        assert not await guard.authorized(auth("nobody", "s3cret"))
        assert guard.bcrypt_runs == 5  # an unknown user too (no timing difference)

    asyncio.run(check())


def test_the_middleware_refuses_without_credentials_and_sets_the_headers_on_every_answer(tmp_path: Path):
    doc = {
        "basic_auth_users": {"prometheus": HASH},
        "http_server_config": {"headers": {"Content-Security-Policy": "", "X-Frame-Options": "deny"}},
    }
    guard = Guard(load_web_config(write(tmp_path, doc)), "default-src 'none'")
    middleware = guard.middleware()

    async def ok(request: Any) -> web.Response:
        return web.Response(text="fine")

    async def missing(request: Any) -> web.Response:
        raise web.HTTPNotFound()

    async def broken(request: Any) -> web.Response:
        raise RuntimeError("a bug")

    def request(authorization: str | None = None) -> Any:
        return make_mocked_request(
            "GET", "/metrics", headers={"Authorization": authorization} if authorization else {}
        )

    async def run() -> None:
        refused = await middleware(request(), ok)
        assert refused.status == 401 and refused.headers["WWW-Authenticate"] == 'Basic realm="ccmon"'
        good = auth("prometheus", "s3cret")
        for answer in (refused, await middleware(request(good), ok), await middleware(request(good), broken)):
            assert answer.headers["Server"] == "ccmon"
            assert answer.headers["X-Content-Type-Options"] == "nosniff"
            assert answer.headers["X-Frame-Options"] == "deny"
            assert "Content-Security-Policy" not in answer.headers  # blank in the file: unset
        assert (await middleware(request(good), broken)).status == 500
        with pytest.raises(web.HTTPNotFound) as nf:
            await middleware(request(good), missing)
        assert nf.value.headers["Server"] == "ccmon"

    asyncio.run(run())


def test_without_a_file_everyone_gets_in_and_the_pages_get_a_strict_csp():
    guard = Guard(None, page_csp([b"<style>b{}</style><script>go()</script>", b"<script>x()</script>"]))

    async def ok(request: Any) -> web.Response:
        return web.Response(text="fine")

    async def serve() -> Any:
        return await guard.middleware()(make_mocked_request("GET", "/wallboard"), ok)

    answer = asyncio.run(serve())
    assert answer.status == 200 and answer.headers["Server"] == "ccmon"
    csp = answer.headers["Content-Security-Policy"]
    sha = base64.b64encode(hashlib.sha256(b"go()").digest()).decode()
    assert f"script-src 'self' 'sha256-{sha}' " in csp and "frame-ancestors 'none'" in csp
    assert "unsafe" not in csp and "default-src 'none'" in csp
    assert inline_hashes(b"<script src='pages.js'></script><style>a{}</style>")["script"] == []


def test_the_shipped_pages_inline_blocks_are_all_hashed():
    from streams.wallboard import agents, queues

    for html in (queues.page(), agents.page()):
        hashes = inline_hashes(html)
        assert hashes["script"] and hashes["style"]  # each page has one of each today
        assert html.count(b"<script>") == len(hashes["script"]) and html.count(b"<style>") == len(
            hashes["style"]
        )


# ---- Kafka: a password is never ignored nor sent in clear unless allowed ----------------------------
SASL = {"CCMON_KAFKA_USERNAME": "ccmon", "CCMON_KAFKA_PASSWORD": "pw"}


@pytest.mark.parametrize(
    "env, needle",
    [
        ({"CCMON_KAFKA_PASSWORD": "pw"}, "CCMON_KAFKA_SECURITY_PROTOCOL=PLAINTEXT uses no SASL"),
        ({"CCMON_KAFKA_SECURITY_PROTOCOL": "SSL", **SASL}, "SSL uses no SASL, so it would be ignored"),
        (
            {
                "CCMON_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
                "CCMON_KAFKA_SASL_MECHANISM": "PLAIN",
                **SASL,
            },
            "CCMON_KAFKA_ALLOW_PLAINTEXT_PASSWORD=1",
        ),
        ({"CCMON_WEB_CONFIG_FILE": "/no/such/web.yml"}, "CCMON_WEB_CONFIG_FILE: cannot read"),
        ({"CCMON_KAFKA_ALLOW_PLAINTEXT_PASSWORD": "maybe"}, "use true or false"),
    ],
)
def test_settings_refuse_an_ignored_or_clear_text_password(env: dict, needle: str):
    with pytest.raises(ConfigError) as err:
        load(env)
    assert needle in str(err.value) and "\n" not in str(err.value) and "pw" not in str(err.value)


def test_plain_over_plaintext_when_allowed_and_scram_over_plaintext_are_accepted():
    plain = {"CCMON_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", "CCMON_KAFKA_SASL_MECHANISM": "PLAIN", **SASL}
    assert load({**plain, "CCMON_KAFKA_ALLOW_PLAINTEXT_PASSWORD": "1"}).kafka.allow_plaintext_password
    scram = load({"CCMON_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT", **SASL})
    assert scram.kafka.sasl_mechanism == "SCRAM-SHA-512" and not scram.kafka.allow_plaintext_password
    assert load({"CCMON_KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "CCMON_KAFKA_SASL_MECHANISM": "PLAIN", **SASL})


@pytest.mark.parametrize("command", [["worker"], ["simulate", "--duration", "1"]])
def test_the_cli_ends_with_exit_2_and_one_line(command: list[str], capsys, monkeypatch, tmp_path: Path):
    monkeypatch.setenv("CCMON_BROKER", "kafka://127.0.0.1:1")  # nothing may try to reach it
    monkeypatch.setenv("CCMON_KAFKA_PASSWORD", "pw")
    assert main(command) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "uses no SASL" in err and "Traceback" not in err, err
    monkeypatch.delenv("CCMON_KAFKA_PASSWORD")
    bad = write(tmp_path, {"basic_auth_users": {"p": "not-a-hash"}})
    if command == ["worker"]:
        assert main(["worker", "--web-config-file", bad]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "not a bcrypt hash" in err and bad in err, err
