"""The peer in the benchmark: what a user would get from quix-streams, the other Python stream
library, doing a simpler version of ccmon's work on the same topics.

    python -m benchmarks.peer_quix     (settings from the same CCMON_* variables as the worker)

Per queue, tumbling one-minute counts of offered, answered and abandoned contacts by event time:
decode each event (bad input is dropped, not dead-lettered), remember each contact's queue in
keyed state (answers and abandons do not name it), re-key by queue (a repartition topic), and
aggregate in windowed state. State is RocksDB with its changelog topics on, as quix-streams
ships it; at-least-once, its default. No lateness rules, transfers, wrap-up or agents: the agents
topic is read and dropped, so the job consumes the same N events as the worker.
``/count`` reports how many input events it has processed, for the benchmark to time it.
"""

from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from quixstreams import Application, State
from quixstreams.dataframe.windows import Sum

from streams.config import load

KINDS = {"offered": "o", "answered": "a", "abandoned": "b"}


def decode(value: bytes) -> dict[str, Any] | None:
    try:
        event = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict) or event.get("type") not in KINDS or not isinstance(event.get("ts"), int):
        return None
    return event


def with_queue(event: dict[str, Any], state: State) -> dict[str, Any] | None:
    """The contact's queue: named by its offer, remembered in the contact's keyed state."""
    kind = KINDS[event["type"]]
    if kind == "o":
        queue = event.get("queue")
        state.set("queue", queue)
    else:
        queue = state.get("queue")
    if not isinstance(queue, str):
        return None
    return {"queue": queue, "ts": event["ts"], "o": kind == "o", "a": kind == "a", "b": kind == "b"}


def main() -> None:
    s = load(os.environ)
    handled = [0]
    inputs = {s.calls_topic, s.chats_topic, s.agents_topic}

    def processed(topic: str, partition: int, offset: int) -> None:
        if topic in inputs:
            handled[0] += 1

    app = Application(
        broker_address=s.kafka.bootstrap_servers,
        consumer_group=f"{s.app_id}-quix",
        auto_offset_reset="earliest",
        state_dir=os.path.join(s.data_dir, "quix"),
        use_changelog_topics=True,
        loglevel="WARNING",
        on_message_processed=processed,
    )
    frames = [
        app.dataframe(app.topic(name, key_deserializer="bytes", value_deserializer="bytes"))
        for name in (s.calls_topic, s.chats_topic, s.agents_topic)
    ]
    sdf = frames[0].concat(frames[1]).concat(frames[2])
    sdf = sdf.apply(decode).filter(lambda e: e is not None)
    sdf = sdf.apply(with_queue, stateful=True).filter(lambda e: e is not None)
    sdf = sdf.set_timestamp(lambda value, key, timestamp, headers: value["ts"])
    sdf = sdf.group_by("queue")
    window = sdf.tumbling_window(duration_ms=60_000).agg(
        offered=Sum("o"), answered=Sum("a"), abandoned=Sum("b")
    )
    sdf = window.current()

    class Count(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            body = json.dumps({"handled": handled[0]}).encode()
            self.send_response(200 if self.path == "/count" else 404)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    web = ThreadingHTTPServer((s.web.host, s.web.port), Count)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    app.run(sdf)


if __name__ == "__main__":
    main()
