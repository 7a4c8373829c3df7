"""The worker's web port behind the exporter toolkit's web config file: a real Prometheus scrapes it
over TLS with basic auth and a client certificate, and is refused with a wrong password or without
the certificate; every route, /health included, answers 401 without credentials; a bad file ends
the worker at once with one line."""

from __future__ import annotations

import base64
import json
import ssl
import statistics
import time
import urllib.error
import urllib.request
from pathlib import Path

import bcrypt
import pytest
import yaml

from streams.dev.harness import wait_until
from tests.integration.support import Env, Worker, start_prometheus
from tests.unit.helpers import make_tls

pytestmark = pytest.mark.integration

USER, PASSWORD = "prometheus", "correct horse battery staple"


def web_config(tmp: Path, **tls: str) -> tuple[Path, ssl.SSLContext]:
    """A web config file requiring TLS with a client certificate and basic auth; a client context
    that trusts the test CA and presents the client certificate."""
    files = make_tls(tmp)
    config = {
        "tls_server_config": {
            "cert_file": files.cert.name,  # relative: next to the config file, as the toolkit reads it
            "key_file": str(files.key),
            "client_ca_file": str(files.ca),
            "client_auth_type": "RequireAndVerifyClientCert",
            **tls,
        },
        "basic_auth_users": {USER: bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(8)).decode()},
    }
    path = tmp / "web-config.yml"
    path.write_text(yaml.safe_dump(config))
    client = ssl.create_default_context(cafile=str(files.ca))
    client.load_cert_chain(str(files.client_cert), str(files.client_key))
    return path, client


def fetch(
    url: str, context: ssl.SSLContext | None, auth: tuple[str, str] | None = None
) -> tuple[int, dict, bytes]:
    headers = {}
    if auth:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), context=context) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def scrape_ms(base: str, context: ssl.SSLContext | None) -> float:
    """The median time of 20 GETs of /metrics, each on a new connection (docs/security.md)."""
    times = []
    for _ in range(20):
        t = time.perf_counter()
        assert fetch(base + "/metrics", context, (USER, PASSWORD))[0] == 200
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def prom(port: int, path: str) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as resp:
        return json.loads(resp.read())


def test_prometheus_scrapes_over_tls_with_basic_auth_and_is_refused_without(env: Env, tmp_path: Path):
    config, client = web_config(tmp_path)
    worker = Worker.launched(env, CCMON_WEB_CONFIG_FILE=str(config))
    worker.tls, worker.basic_auth = client, (USER, PASSWORD)
    try:
        worker.wait_ready()
        base = f"https://127.0.0.1:{worker.port}"
        # without credentials every route is refused, the probe's too; the 401 carries the headers
        for path in ("/metrics", "/health", "/wallboard", "/api/agents", "/pages.js", "/no-such-page"):
            status, headers, _ = fetch(base + path, client)
            assert status == 401, (path, status)
            assert headers["WWW-Authenticate"].startswith("Basic")
            assert headers["Server"] == "ccmon" and headers["X-Content-Type-Options"] == "nosniff"
        assert fetch(base + "/metrics", client, (USER, "wrong"))[0] == 401
        assert fetch(base + "/metrics", client, ("nobody", PASSWORD))[0] == 401
        status, headers, body = fetch(base + "/metrics", client, (USER, PASSWORD))
        assert status == 200 and b"ccmon_" in body and headers["Server"] == "ccmon"
        # plain HTTP on the TLS port gets no page
        with pytest.raises(OSError):
            urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/health", timeout=5).read()

        target = [f"127.0.0.1:{worker.port}"]
        tls = {
            "ca_file": str(tmp_path / "ca.pem"),
            "cert_file": str(tmp_path / "client.pem"),
            "key_file": str(tmp_path / "client-key.pem"),
        }
        jobs = [
            {
                "job_name": name,
                "scheme": "https",
                "tls_config": tls if name != "no-cert" else {"ca_file": tls["ca_file"]},
                "basic_auth": {"username": USER, "password": PASSWORD if name != "wrong" else "wrong"},
                "static_configs": [{"targets": target}],
            }
            for name in ("right", "wrong", "no-cert")
        ]
        proc, port = start_prometheus(tmp_path, worker.port, scrape_configs=jobs)
        try:

            def scraped() -> dict | None:
                try:
                    targets = prom(port, "/api/v1/targets")["data"]["activeTargets"]
                except OSError:
                    return None
                found = {t["labels"]["job"]: t for t in targets if t["health"] != "unknown"}
                return found if len(found) == 3 else None

            targets = wait_until(scraped, timeout=60, check=worker.check, what="Prometheus to scrape 3 jobs")
            assert targets is not None
            assert targets["right"]["health"] == "up", targets["right"]["lastError"]
            assert targets["wrong"]["health"] == "down"
            assert "401" in targets["wrong"]["lastError"]
            assert targets["no-cert"]["health"] == "down"  # the TLS handshake wants the certificate
            up = {
                r["metric"]["job"]: r["value"][1]
                for r in prom(port, "/api/v1/query?query=up")["data"]["result"]
            }
            assert up == {"right": "1", "wrong": "0", "no-cert": "0"}
            series = prom(
                port, "/api/v1/query?query=count(%7Bjob%3D%22right%22%2C__name__%3D~%22ccmon_.%2A%22%7D)"
            )
            assert float(series["data"]["result"][0]["value"][1]) > 10
            took = prom(port, "/api/v1/query?query=scrape_duration_seconds%7Bjob%3D%22right%22%7D")
            took_ms = float(took["data"]["result"][0]["value"][1]) * 1000
            print(f"\nPrometheus' scrape over TLS + basic auth: {took_ms:.1f} ms")
            print(f"/metrics over TLS + basic auth, a new connection each: {scrape_ms(base, client):.1f} ms")
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    finally:
        worker.stop()


def test_a_bad_web_config_file_ends_the_worker_with_one_line(env: Env, tmp_path: Path):
    config, _ = web_config(tmp_path, client_auth_type="RequireAnyClientCert")
    done = env.ccmon("worker", "--web-config-file", str(config), timeout=60)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "client_auth_type" in lines[0] and str(config) in lines[0], done.stderr
    missing = env.ccmon("worker", timeout=60, CCMON_WEB_CONFIG_FILE=str(tmp_path / "absent.yml"))
    assert missing.returncode == 2 and "CCMON_WEB_CONFIG_FILE" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


def test_pages_run_under_their_content_security_policy(env: Env, workers: list[Worker], browser):
    """The pages' inline script and style are allowed by hash, their JSON by connect-src, and
    nothing is refused: the browser fetches each page's JSON from its inline script, and reports
    no violation. Every response carries the headers, and no version in ``Server``."""
    w = Worker(env)
    workers.append(w)
    for path, api in (("/wallboard", "/api/wallboard"), ("/agents", "/api/agents")):
        with urllib.request.urlopen(w.url(path)) as resp:
            csp = resp.headers["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in csp and "'unsafe-inline'" not in csp
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
            assert resp.headers["Referrer-Policy"] == "no-referrer"
            assert resp.headers["Server"] == "ccmon"
        page = browser.new_page()
        refused: list[str] = []
        page.on(
            "console", lambda m, seen=refused: seen.append(m.text) if "Security Policy" in m.text else None
        )
        with page.expect_response(lambda r, api=api: r.url.endswith(api) and r.status == 200, timeout=15_000):
            page.goto(w.url(path))
        page.wait_for_load_state("load")
        assert refused == [], refused
        page.close()
    # every API route's parameters: /api/agents takes offset and limit, /api/wallboard none
    for query in (f"offset={10**26}", "offset=-1", "limit=0", "limit=ten", "offset=1&limit=99999999999"):
        with pytest.raises(urllib.error.HTTPError) as bad:
            urllib.request.urlopen(w.url(f"/api/agents?{query}"))
        reason = json.loads(bad.value.read())["error"]
        assert bad.value.code == 400 and "must be an integer from" in reason and "\n" not in reason, query
    assert json.loads(w.get("/api/agents?offset=0&limit=1000000000"))["agents"] == []
    assert "generated_at" in json.loads(w.get(f"/api/wallboard?offset={10**26}&limit=0"))
    print(f"\n/metrics over plain HTTP, a new connection each: {scrape_ms(w.url(''), None):.1f} ms")
    for path in ("/metrics", "/health", "/api/agents", "/pages.js", "/no-such-page"):
        try:
            headers = urllib.request.urlopen(w.url(path)).headers
        except urllib.error.HTTPError as e:
            headers = e.headers
        assert headers["Server"] == "ccmon" and headers["X-Content-Type-Options"] == "nosniff", path
