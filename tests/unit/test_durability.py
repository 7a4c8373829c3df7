"""Durable writes on a replicated Kafka (issue 26): the worker's producer is idempotent with
acks=all, every topic ccmon makes (the changelogs too) has min.insync.replicas 2 at replication 3,
and the local cluster's layout (ports, quorum, replication of the internal topics)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streams.cli.main import main
from streams.config import load
from streams.dev.kafka_local import LocalCluster, LocalKafka, local_kafka
from streams.kafka.topics import min_insync_replicas, topic_configs
from streams.worker.faust_app import make_app
from streams.worker.tables import Tables


def settings(tmp_path: Path, replication: int):
    return load({"CCMON_DATA_DIR": str(tmp_path), "CCMON_REPLICATION_FACTOR": str(replication)})


async def test_the_worker_producer_is_idempotent_with_acks_all(tmp_path: Path):
    # Faust's own producer is idempotent only in transactions: a batch resent after a leader
    # change would be written twice (tests/integration/test_three_brokers.py kills leaders)
    app = make_app(settings(tmp_path, 3))
    producer = app.producer._new_producer()  # type: ignore[attr-defined]
    assert producer._txn_manager is not None, "enable_idempotence is off"
    assert producer._sender._acks == -1


@pytest.mark.parametrize(("replication", "min_isr"), [(1, "1"), (2, "1"), (3, "2"), (5, "2")])
def test_every_topic_and_changelog_gets_min_insync_replicas(tmp_path: Path, replication: int, min_isr: str):
    s = settings(tmp_path, replication)
    assert topic_configs(s) == {"min.insync.replicas": min_isr}
    assert str(min_insync_replicas(replication)) == min_isr
    tables = Tables(make_app(s), s)
    for table, _ in tables.with_changelogs():
        topic = table.changelog_topic
        assert topic.config == {"min.insync.replicas": min_isr}, topic.get_topic_name()


def props(node: LocalKafka) -> dict[str, str]:
    node.data_dir.mkdir(parents=True, exist_ok=True)
    text = node._write_config().read_text()
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_a_cluster_is_three_voters_on_their_own_ports_with_replicated_internal_topics(tmp_path: Path):
    cluster = LocalCluster(port=30000, brokers=3, data_dir=tmp_path)
    nodes = cluster.nodes
    assert [(n.node_id, n.port, n.controller_port) for n in nodes] == [
        (1, 30000, 30001),
        (2, 30002, 30003),
        (3, 30004, 30005),
    ]
    assert len({n.data_dir for n in nodes}) == 3
    assert cluster.address == "127.0.0.1:30000,127.0.0.1:30002,127.0.0.1:30004"
    for node in nodes:
        p = props(node)
        assert p["node.id"] == str(node.node_id)
        assert p["controller.quorum.voters"] == "1@127.0.0.1:30001,2@127.0.0.1:30003,3@127.0.0.1:30005"
        assert p["offsets.topic.replication.factor"] == "3"
        assert p["default.replication.factor"] == "3"
        assert p["min.insync.replicas"] == "2"
        assert p["transaction.state.log.min.isr"] == "2"
    single = props(LocalKafka(port=30010, data_dir=tmp_path / "single"))
    assert single["controller.quorum.voters"] == "1@127.0.0.1:30011"
    assert single["offsets.topic.replication.factor"] == "1" and single["min.insync.replicas"] == "1"


def test_stop_and_status_find_the_cluster_the_data_dir_holds(tmp_path: Path):
    assert isinstance(local_kafka(9092, tmp_path, None), LocalKafka)  # nothing recorded: one broker
    assert isinstance(local_kafka(9092, tmp_path, 1), LocalKafka)
    (tmp_path / "cluster.json").write_text(json.dumps({"brokers": 3, "port": 30100, "cluster_id": "x"}))
    found = local_kafka(9092, tmp_path, None)
    assert isinstance(found, LocalCluster) and (found.port, found.brokers) == (30100, 3)


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["kafka", "start", "--brokers", "0"], "not a broker count"),
        (["kafka", "start", "--brokers", "many"], "not a broker count"),
        (["kafka", "stop", "--brokers", "3"], "--brokers is for start"),
    ],
)
def test_bad_broker_counts_are_one_line_usage_errors(argv, says, capsys, tmp_path: Path):
    try:
        code = main([*argv, "--data-dir", str(tmp_path)])
    except SystemExit as exc:  # argparse's own errors
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code == 2 and says in err and "Traceback" not in err
