"""The Faust app and its settings: each one is chosen for exactness or throughput (docs/performance.md)."""

from __future__ import annotations

from pathlib import Path

import faust

from streams.config import Settings
from streams.errors import CcmonError
from streams.faust_ext.producer import install as install_producer
from streams.faust_ext.web import WEB_URL
from streams.kafka.auth import faust_credentials
from streams.worker.web_security import web_guard

__all__ = ["make_app", "worker_dir"]


def worker_dir(s: Settings) -> Path:
    return Path(s.data_dir) / "worker"


def make_app(s: Settings) -> faust.App:
    """At-least-once with ccmon's own ordering (streams/worker/state_writer.py); offsets committed
    every batch; tables in memory (their snapshots: streams/faust_ext/snapshot.py)."""
    workdir = worker_dir(s)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CcmonError(
            f"cannot create the data directory {workdir} ({exc.strerror}); "
            f"set CCMON_DATA_DIR to a writable directory"
        ) from None
    guard, tls = web_guard(s)  # TLS, basic auth and headers on every route (docs/security.md)
    app = faust.App(
        s.app_id,
        broker=s.kafka.broker,
        store="memory://",
        datadir=str(workdir),
        topic_partitions=s.partitions,
        topic_replication_factor=s.topics.replication_factor,
        web_bind=s.web.host,
        web_host=s.web.host,
        web_port=s.web.port,
        consumer_auto_offset_reset="earliest",
        processing_guarantee="at_least_once",
        autodiscover=False,
        broker_commit_every=s.batching.size,
        broker_commit_interval=1.0,
        stream_buffer_maxsize=max(4096, s.batching.size * 2),
        producer_linger=0.005,
        producer_max_batch_size=1024 * 1024,
        producer_max_request_size=8 * 1024 * 1024,
        broker_max_poll_records=max(5000, s.batching.size * 2),
        consumer_max_fetch_size=8 * 1024 * 1024,
        table_standby_replicas=0,
        broker_session_timeout=s.kafka.session_timeout_s,
        broker_heartbeat_interval=max(1.0, s.kafka.session_timeout_s / 4),
        web_enabled=True,
        web_ssl_context=tls,
        web_application_options={"middlewares": [guard.middleware()]},
        # ccmon's own pages only (streams/faust_ext/web.py mounts none of Faust's); the flags
        # say the same, for a Faust that would mount a built-in page by another route
        web=WEB_URL,
        web_tables_enabled=False,
        web_router_enabled=False,
        web_stats_enabled=False,
        web_graph_enabled=False,
        web_metrics_enabled=False,
        broker_credentials=faust_credentials(s),
        producer_acks=-1,  # acks=all: a write is on min.insync.replicas brokers before it counts
    )
    install_producer(app)  # and idempotent: a retry after a leader change is not written twice
    return app
