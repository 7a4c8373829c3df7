"""``ccmon ingest webhooks``: one aiohttp server, one route per enabled platform, Kafka-acknowledged
answers (docs/sources/webhooks.md).

Per delivery, in this order: the body is read up to the limit (413 past it), the platform verifies
it (401), parses it (400 for a body that is not its format; 2xx ``ignored`` for a type the mapping
does not use), the events are sent and the answer waits for Kafka's acknowledgement of every one of
them, at most the platform's ``answer_within_s``: then 2xx, else 503 (the platform retries; the
events that did reach Kafka come again with the same ids, duplicates in the worker). A platform's
state (Chatwoot's reopened segments) is saved to the state file after the acknowledgement.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from producers.sources.base import StateError, StatefulSource, load_state
from producers.sources.events import SourceEvent
from producers.sources.webhooks.platform import BadRequest, Ignored, Platform, Unauthorized
from streams.config import Settings
from streams.errors import CcmonError
from streams.killpoints import reached

__all__ = ["Receiver", "ReceiverConfig"]

RESULTS = ("ok", "ignored", "unauthorized", "bad_request", "too_large", "unavailable", "error")
#: distinct details per platform and step on /metrics; the rest add up under ``other`` (a detail can
#: be a type name from an authentic payload: the series stay bounded whatever the sender sends)
MAX_DETAILS = 32


class PlatformSteps:
    """The platforms' own counts (``Platform.steps``, ``Platform.held_now``), read at each scrape:
    the mappings keep them as plain counters, so nothing is counted twice or needs a hook."""

    def __init__(self, platforms: dict[str, Platform]) -> None:
        self.platforms = platforms

    def collect(self) -> list[Metric]:
        steps = CounterMetricFamily(
            "ccmon_webhook_steps",
            "What a platform's mapping did besides sending events, since start: ignored (acknowledged, "
            "no event), held (waiting for its predecessor), released (sent after the hold bound without "
            "it), dropped (too late to place), by detail",
            labels=["platform", "step", "detail"],
        )
        held = GaugeMetricFamily(
            "ccmon_webhook_held", "Events a platform holds now for their predecessor", labels=["platform"]
        )
        for name, platform in self.platforms.items():
            by_step: dict[str, dict[str, int]] = {}
            for (step, detail), n in sorted(platform.steps().items()):
                details = by_step.setdefault(step, {})
                key = detail if detail in details or len(details) < MAX_DETAILS else "other"
                details[key] = details.get(key, 0) + n
            for step, details in by_step.items():
                for detail, n in details.items():
                    steps.add_metric([name, step, detail], n)
            held.add_metric([name], platform.held_now())
        return [steps, held]

    def describe(self) -> list[Metric]:
        return []


@dataclass(frozen=True)
class ReceiverConfig:
    host: str = "127.0.0.1"
    port: int = 8090
    max_body: int = 1 << 20
    state_file: Path | None = None
    quiet: bool = False


class Receiver(StatefulSource):
    """The web application and the producer behind it."""

    name = "webhooks"

    def __init__(
        self,
        s: Settings,
        config: ReceiverConfig,
        platforms: dict[str, Platform],
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(s, config.state_file, "webhooks", "webhooks", quiet=config.quiet)
        self.config, self.platforms, self.clock = config, platforms, clock
        self.registry = CollectorRegistry(auto_describe=True)
        self.deliveries = Counter(
            "ccmon_webhook_deliveries",
            "Webhook deliveries by platform and result (ok, ignored, unauthorized, bad_request, "
            "too_large, unavailable)",
            ["platform", "result"],
            registry=self.registry,
        )
        self.events_sent = Counter(
            "ccmon_webhook_events",
            "Events produced from webhook deliveries and acknowledged by Kafka",
            ["platform"],
            registry=self.registry,
        )
        self.ack_seconds = Histogram(
            "ccmon_webhook_ack_seconds",
            "From a delivery's arrival to its answer after Kafka acknowledged its events",
            ["platform"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        for name in platforms:
            for result in RESULTS:
                self.deliveries.labels(name, result)
            self.events_sent.labels(name)
            self.ack_seconds.labels(name)
        self.registry.register(PlatformSteps(platforms))
        self._runner: web.AppRunner | None = None
        self.bound_port = 0
        self._errors: set[str] = set()

    # ---- state -------------------------------------------------------------------------------------
    def load(self) -> None:
        """The platforms' saved state; a file of the wrong shape is one line, exit 2."""
        doc = load_state(self.config.state_file, "webhooks", "webhooks")
        try:
            for name, state in (doc.get("platforms") or {}).items():
                if name in self.platforms:
                    self.platforms[name].load_state(state)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise StateError(
                f"state file {self.config.state_file} has the wrong shape ({type(exc).__name__}: "
                f"{str(exc)[:120]}); move it away to start from the beginning"
            ) from None

    def state(self) -> dict[str, Any]:
        return {"platforms": {n: p.to_state() for n, p in self.platforms.items()}}

    # ---- the web application -----------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.config.max_body)
        for name in self.platforms:
            app.router.add_post(f"/webhooks/{name}", self._handler(name))
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/health", self._health)
        return app

    async def serve(self) -> None:
        self._runner = web.AppRunner(self.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.bound_port = sockets[0].getsockname()[1] if sockets else self.config.port

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(self.registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "platforms": sorted(self.platforms)})

    def _handler(self, name: str) -> Callable[[web.Request], Any]:
        platform = self.platforms[name]

        async def handle(request: web.Request) -> web.StreamResponse:
            started = time.monotonic()
            result, response = await self._deliver(platform, request)
            self.deliveries.labels(name, result).inc()
            if result == "ok":
                self.ack_seconds.labels(name).observe(time.monotonic() - started)
            return response

        return handle

    @staticmethod
    def _error(platform: Platform, request: web.Request, status: int, reason: str) -> web.Response:
        """The refusal in the sender's documented error format where it has one (the platform's
        ``error_response``), else the one-line reason as text."""
        line = reason.replace("\n", " ")[:300]
        answer = platform.error_response(request.headers, status, line)
        if answer is None:
            return web.Response(status=status, text=line + "\n")
        return web.Response(status=answer.status, body=answer.body, content_type=answer.content_type)

    async def _deliver(self, platform: Platform, request: web.Request) -> tuple[str, web.Response]:
        limit = self.config.max_body
        if request.content_length is not None and request.content_length > limit:
            return "too_large", self._error(platform, request, 413, f"body over {limit} bytes")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return "too_large", self._error(platform, request, 413, f"body over {limit} bytes")
        try:
            platform.verify(request.headers, body, self.clock())
        except Unauthorized as exc:
            return "unauthorized", self._error(platform, request, 401, exc.reason)
        try:
            events = platform.parse(request.headers, body)
        except BadRequest as exc:
            return "bad_request", self._error(platform, request, 400, exc.reason)
        except Ignored as exc:
            return "ignored", web.json_response({"ok": True, "ignored": exc.reason})
        except Exception as exc:  # a payload the mapping did not foresee: a bug, said once per type
            kind = f"{platform.name}: {type(exc).__name__}"
            if kind not in self._errors:
                self._errors.add(kind)
                self.note(f"{kind} while mapping a delivery ({str(exc)[:200]}); answered 500")
            return "error", self._error(
                platform, request, 500, f"the delivery could not be mapped ({type(exc).__name__})"
            )
        try:
            await asyncio.wait_for(self._acknowledged(events), platform.answer_within_s)
        except Exception as exc:  # a timeout or a Kafka error: either way the platform must retry
            reason = "timed out" if isinstance(exc, TimeoutError) else type(exc).__name__
            return "unavailable", self._error(
                platform, request, 503, f"Kafka did not acknowledge the events ({reason}); deliver again"
            )
        reached("webhook-acked")  # crash tests: acknowledged by Kafka, not answered (a no-op otherwise)
        self.events_sent.labels(platform.name).inc(len(events))
        if self.config.state_file is not None and (events or platform.dirty):
            platform.dirty = False
            self.mark_dirty()
            try:
                await self.commit(None)
            except CcmonError as exc:  # the state could not be saved: not accepted, deliver again
                platform.dirty = True
                return "unavailable", self._error(platform, request, 503, str(exc))
        answer = platform.respond(request.headers, events)
        return "ok", web.Response(status=answer.status, body=answer.body, content_type=answer.content_type)

    async def _acknowledged(self, events: list[SourceEvent]) -> None:
        sent = await self.send(events, track=False)
        if sent:
            await asyncio.gather(*sent)
