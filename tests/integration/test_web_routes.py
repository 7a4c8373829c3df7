"""What a worker's web port serves is exactly what docs/security.md says it serves: every route a
real worker registers (its own log line, from the aiohttp router) has a row in the table of
routes there, and every row is a route; Faust's built-in pages (``/table/``, ``/router/``, the
statistics, the graph) are not served."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import pytest

from tests.integration.support import ROOT, Env, Worker

pytestmark = pytest.mark.integration

#: Faust's built-in pages (faust/web/apps/): each must answer 404
FAUST_PAGES = (
    "/table/",
    "/table/ccmon-agents/",
    "/router/",
    "/router/ccmon-agents/",
    "/",
    "/assignment/",
    "/graph/",
    "/performance/",
)


def documented_routes() -> dict[str, set[str]]:
    """path → methods, from the table under "### Routes of a worker's web port" in docs/security.md."""
    text = (ROOT / "docs" / "security.md").read_text()
    section = text.split("### Routes of a worker's web port", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| `(/[^`]*)` \| ([A-Z, ]+) \| (.+) \|$", section, re.M)
    assert rows, "no table of routes in docs/security.md"
    return {path: {m.strip() for m in methods.split(",")} for path, methods, _ in rows}


def served_routes(worker: Worker) -> dict[str, set[str]]:
    """path → methods, from the worker's "web routes:" line (streams/faust_ext/web.py)."""
    lines = [line for line in worker.log.read_text().splitlines() if "web routes: " in line]
    assert len(lines) == 1, worker.log.read_text()[-3000:]
    served = re.findall(r"(\S+)\[([A-Z,]+)\]", lines[0].split("web routes: ", 1)[1])
    return {path: set(methods.split(",")) for path, methods in served}


def status(worker: Worker, path: str) -> int:
    try:
        with urllib.request.urlopen(worker.url(path), timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_every_route_a_worker_serves_is_documented_and_faust_pages_are_not_served(
    env: Env, workers: list[Worker]
):
    worker = Worker(env, CCMON_LOG_LEVEL="info", CCMON_AGENT_METRICS="true")
    workers.append(worker)
    for path in FAUST_PAGES:
        assert status(worker, path) == 404, path
    served, documented = served_routes(worker), documented_routes()
    assert served == documented, (
        f"served but not in docs/security.md: {sorted(set(served) - set(documented))}; "
        f"documented but not served: {sorted(set(documented) - set(served))}; "
        f"methods differ: {sorted(p for p in set(served) & set(documented) if served[p] != documented[p])}"
    )
    for path in served:  # each is a page, not a leftover: it answers
        assert status(worker, path) == 200, path
