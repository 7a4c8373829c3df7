"""Start, watch and stop one ccmon process: the one way the tests, the benchmark and the demo do it.

Each of them used to carry its own copy of "spawn, poll /health until 200, scrape, read RSS,
SIGTERM then SIGKILL", and the copies drifted (one forgot the deadline, one the exit check). Here
every wait ends on state, never on a sleep: a ready page, a condition on the metrics, a process
that exited. A process that dies while being waited on fails the wait at once with the tail of its
log, so a crash is not reported as a time-out a minute and a half later.

Pure standard library plus prometheus-client's parser; no Kafka, no Faust: the harness knows
nothing about what it runs, only that it serves HTTP on 127.0.0.1.
"""

from __future__ import annotations

import base64
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, TypeVar

from prometheus_client.parser import text_string_to_metric_families

__all__ = [
    "NotReady",
    "ProcessExited",
    "Samples",
    "Service",
    "free_kafka_port",
    "free_port",
    "rss_of",
    "wait_stable",
    "wait_until",
]

T = TypeVar("T")
#: one scrape of /metrics: (sample name, its labels) -> value
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
#: how long a poll waits between two looks: short enough that a measured wait is not inflated by
#: much, long enough that the polling does not compete with the process for a busy machine's CPUs
POLL_S = 0.1
LOG_TAIL = 3000


class ProcessExited(RuntimeError):
    """The process ended while something waited for it: waiting longer cannot help."""


class NotReady(TimeoutError):
    """The condition did not hold by the deadline while the process kept running."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now (the OS picks it, so parallel runs do not collide)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def free_kafka_port(span: int = 2) -> int:
    """A free port whose ``span - 1`` successors are free too: the local broker's controller
    listens on port + 1, a cluster of N brokers takes 2N ports in a row; with several test runs
    on one machine, a free port's successor is often taken."""
    while True:
        port = free_port()
        if port + span > 65536:
            continue
        taken = False
        for successor in range(port + 1, port + span):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", successor))
                except OSError:
                    taken = True
                    break
        if not taken:
            return port


def wait_until(
    condition: Callable[[], T | None],
    *,
    timeout: float | None,
    what: str,
    check: Callable[[], None] | None = None,
    give_up: Callable[[], bool] | None = None,
    interval: float = POLL_S,
) -> T | None:
    """Poll ``condition`` until it returns something truthy, and return that.

    ``check`` runs before every look and raises to end the wait early (a process that died);
    ``give_up`` returning true ends it quietly with None (the demo's Ctrl-C). ``timeout`` None
    waits for ever (the demo, where a person decides); otherwise NotReady names ``what``.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        if give_up is not None and give_up():
            return None
        if check is not None:
            check()
        if result := condition():
            return result
        if deadline is not None and time.monotonic() >= deadline:
            raise NotReady(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


def wait_stable(
    look: Callable[[], T],
    *,
    quiet_s: float,
    timeout: float,
    what: str,
    key: Callable[[T], object] = lambda value: value,
    accept: Callable[[T], bool] = lambda value: True,
    check: Callable[[], None] | None = None,
    interval: float = POLL_S,
) -> T:
    """Poll ``look`` until ``key`` of its value has stayed the same, and ``accept`` true, for
    ``quiet_s``; returns the last value. For "all input is counted, now let the last effects land"
    (a worker's second stage applies facts a moment after the first counted the inputs): the
    state decides when the wait ends, ``quiet_s`` only how long it must hold still."""
    first = look()
    then, since = key(first), time.monotonic()

    def still() -> tuple[T] | None:
        nonlocal then, since
        value = look()
        now = key(value)
        if now != then or not accept(value):
            then, since = now, time.monotonic()
            return None
        return (value,) if time.monotonic() - since >= quiet_s else None

    held = wait_until(
        still, timeout=timeout, what=f"{what} to hold still for {quiet_s:g} s", check=check, interval=interval
    )
    assert held is not None  # only give_up returns None, and there is none here
    return held[0]


def rss_of(pid: int) -> int:
    """Resident memory of process ``pid`` in bytes, from /proc (Linux, where ccmon runs)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise ProcessExited(f"process {pid} has no resident memory (a zombie)")


def parse_metrics(text: str) -> Samples:
    """The samples of a Prometheus text exposition, keyed by name and label set."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


class Service:
    """One child process serving HTTP on ``host``:``port`` (127.0.0.1 unless told).

    ``log`` receives its stdout and stderr (None: they go to ours, as in the demo, where the
    person watching wants to see them). The port is passed by the caller in ``argv`` or ``env``
    however the program takes it; the harness only needs to know where to ask.
    """

    def __init__(
        self,
        argv: Sequence[str],
        *,
        port: int,
        env: Mapping[str, str] | None = None,
        log: Path | None = None,
        cwd: Path | None = None,
        name: str | None = None,
        host: str = "127.0.0.1",
    ) -> None:
        self.argv = list(argv)
        self.port = port
        self.host = host
        self.env = dict(env) if env is not None else None
        self.log = log
        self.cwd = cwd
        self.name = name or Path(self.argv[-1]).name
        self._proc: subprocess.Popen[bytes] | None = None

    # ---- life cycle ------------------------------------------------------------------------
    def start(self) -> Service:
        """Spawn the process (once); returns self so that ``Service(...).start()`` reads as one step."""
        if self._proc is not None:
            raise RuntimeError(f"{self.name} was started already")
        out: IO[bytes] | None = self.log.open("wb") if self.log is not None else None
        try:
            self._proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT if out is not None else None,
            )
        finally:
            if out is not None:
                out.close()  # the child holds its own descriptor
        return self

    @property
    def proc(self) -> subprocess.Popen[bytes]:
        if self._proc is None:
            raise RuntimeError(f"{self.name} was not started")
        return self._proc

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log_tail(self, chars: int = LOG_TAIL) -> str:
        """The end of the log, for failure messages ('see its output above' when there is none)."""
        if self.log is None:
            return "(its output is above)"
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except FileNotFoundError:
            return "(no log written)"

    def check(self) -> None:
        """Raise ProcessExited, with the log's tail, if the process has ended."""
        code = self.proc.poll()
        if code is not None:
            raise ProcessExited(f"{self.name} exited with {code}:\n{self.log_tail()}")

    def stop(self, sig: int = signal.SIGTERM, grace_s: float = 60.0) -> int:
        """Send ``sig`` and wait up to ``grace_s`` for the exit; SIGKILL after that, so a hung
        shutdown cannot hang the caller. Returns the exit code (negative: killed by a signal).
        Stopping a process that already ended only collects its code."""
        proc = self.proc
        if proc.poll() is None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def kill(self) -> int:
        """SIGKILL now, as a crash would (no shutdown code runs); returns the exit code."""
        return self.stop(signal.SIGKILL)

    def wait_exit(self, timeout: float) -> int:
        """Wait for the process to end by itself (a crash point, a finished command)."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise NotReady(f"{self.name} still running after {timeout:g} s:\n{self.log_tail()}") from None

    def __enter__(self) -> Service:
        return self if self._proc is not None else self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._proc is not None:
            self.stop()

    # ---- HTTP ------------------------------------------------------------------------------
    #: how to reach a worker started with a web config file: the CA context, and basic auth
    tls: ssl.SSLContext | None = None
    basic_auth: tuple[str, str] | None = None

    def url(self, path: str) -> str:
        return f"http{'s' if self.tls else ''}://{self.host}:{self.port}{path}"

    def get(self, path: str, timeout: float = 30.0) -> bytes:
        """The body of ``path``; raises OSError (refused, 503, ...) as urllib does."""
        headers = {}
        if self.basic_auth is not None:
            token = base64.b64encode(":".join(self.basic_auth).encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        request = urllib.request.Request(self.url(path), headers=headers)
        with urllib.request.urlopen(request, timeout=timeout, context=self.tls) as resp:
            body: bytes = resp.read()
            return body

    def answers(self, path: str, timeout: float = 2.0) -> bool:
        """Whether ``path`` answers 2xx now: refused while starting, 503 while not ready."""
        try:
            self.get(path, timeout=timeout)
            return True
        except OSError:
            return False

    def wait_ready(
        self, timeout: float | None = 90.0, path: str = "/health", give_up: Callable[[], bool] | None = None
    ) -> float | None:
        """Wait until ``path`` answers 2xx (ccmon's /health does once it has recovered its state
        and owns its partitions); returns the seconds waited, or None if ``give_up`` said so.
        Raises ProcessExited at once if the process dies, NotReady at the deadline."""
        t0 = time.monotonic()
        try:
            ok = wait_until(
                lambda: self.answers(path),
                timeout=timeout,
                check=self.check,
                give_up=give_up,
                what=f"{self.name} to answer {path} on port {self.port}",
            )
        except NotReady as e:
            raise NotReady(f"{e}; its log:\n{self.log_tail()}") from None
        return time.monotonic() - t0 if ok else None

    def metrics_text(self, timeout: float = 30.0) -> bytes:
        """/metrics as served (the benchmark matches it with byte patterns, the cheapest way)."""
        return self.get("/metrics", timeout=timeout)

    def scrape(self, timeout: float = 30.0) -> Samples:
        """/metrics parsed into samples."""
        return parse_metrics(self.metrics_text(timeout).decode())

    def wait_metrics(
        self,
        predicate: Callable[[Samples], bool],
        timeout: float = 60.0,
        what: str = "a condition on /metrics",
    ) -> Samples:
        """Scrape until ``predicate`` holds on a scrape; returns that scrape."""

        def look() -> Samples | None:
            samples = self.scrape()
            return samples if predicate(samples) else None

        result = wait_until(look, timeout=timeout, check=self.check, what=what)
        assert result is not None  # only give_up returns None, and there is none here
        return result

    def rss(self) -> int:
        """Resident memory of the process, in bytes."""
        self.check()
        return rss_of(self.proc.pid)
