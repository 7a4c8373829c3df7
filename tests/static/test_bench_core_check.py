"""The benchmark's workers run the compiled core, and a worker that imported another one stops the
run instead of being timed as if it were compiled (benchmarks/throughput.py, ``Run.check_core``):
here against a stand-in /health on a real local HTTP server, answering as a worker would."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from benchmarks.throughput import Run
from streams.dev.harness import Service
from streams.packaged import core_build


@contextmanager
def health(core: str, status: int) -> Iterator[int]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"ready": status == 200, "core": core}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def worker(run: Run, port: int, core: str) -> Service:
    run.cores[port] = core
    return Service(["true"], port=port, name=f"worker ({core} core)")


@pytest.mark.parametrize("status", [200, 503])  # 503: not ready yet, the body still says the core
def test_a_worker_on_the_core_it_was_started_for_passes(tmp_path: Path, status: int):
    run = Run(kafka=None, prefix="t", workdir=tmp_path)  # type: ignore[arg-type]
    with health("compiled", status) as port:
        run.check_core(worker(run, port, "compiled"))


@pytest.mark.parametrize("asked, ran", [("compiled", "interpreted"), ("interpreted", "compiled")])
def test_a_worker_on_another_core_stops_the_benchmark(tmp_path: Path, asked: str, ran: str):
    run = Run(kafka=None, prefix="t", workdir=tmp_path)  # type: ignore[arg-type]
    with health(ran, 200) as port, pytest.raises(SystemExit, match=f"ran the {ran} core"):
        run.check_core(worker(run, port, asked))


def test_the_source_tree_runs_the_interpreted_core():
    assert core_build() == "interpreted"
