from typing import Any

import pytest

from streams.config import ConfigError, load


def test_defaults_match_the_spec():
    s = load({})
    assert s.kafka.broker == "kafka://127.0.0.1:9092" and s.web.port == 6066
    assert (s.calls_topic, s.chats_topic, s.agents_topic, s.topics.dead_letter) == (
        "cc.calls",
        "cc.chats",
        "cc.agents",
        "cc.dead-letter",
    )
    assert (s.defaults.sl_threshold_s, s.defaults.sl_target, s.defaults.short_abandon_s) == (20, 0.8, 5)
    assert (s.lateness_s, s.acw_timeout_s, s.retention_s, s.max_queues, s.timezone) == (
        600,
        600,
        86400,
        1000,
        "UTC",
    )
    assert s.kafka.bootstrap_servers == "127.0.0.1:9092"


def test_environment_and_per_queue_thresholds(tmp_path):
    f = tmp_path / "queues.json"
    f.write_text('{"vip": {"sl_threshold_s": 10, "sl_target": 0.9}}')
    s = load(
        {
            "CCMON_BROKER": "k1:9092;k2:9093",
            "CCMON_SL_THRESHOLD_S": "30",
            "CCMON_QUEUE_CONFIG": str(f),
            "CCMON_TIMEZONE": "Europe/Berlin",
        }
    )
    assert s.kafka.bootstrap_servers == "k1:9092,k2:9093"
    assert s.thresholds("vip").sl_threshold_s == 10 and s.thresholds("vip").short_abandon_s == 5
    assert s.thresholds("other").sl_threshold_s == 30


@pytest.mark.parametrize(
    "env, needle",
    [
        ({"CCMON_WEB_PORT": "70000"}, "CCMON_WEB_PORT"),
        ({"CCMON_PARTITIONS": "0"}, "CCMON_PARTITIONS"),
        ({"CCMON_SL_TARGET": "80"}, "between 0 and 1"),
        ({"CCMON_TIMEZONE": "Mars/Olympus"}, "IANA"),
        ({"CCMON_BROKER": "not a url"}, "kafka://HOST:PORT"),
        ({"CCMON_LATENESS_S": "-1"}, ">= 0"),
        ({"CCMON_LATENESS_S": "soon"}, "CCMON_LATENESS_S='soon' is not a number"),
        ({"CCMON_AGENT_ACW_LIMIT_S": "soon"}, "CCMON_AGENT_ACW_LIMIT_S='soon' is not a number"),
        ({"CCMON_AGENT_ACW_LIMIT_S": "0"}, "greater than 0"),
        ({"CCMON_QUEUE_CONFIG": "{bad"}, "not valid JSON"),
        ({"CCMON_QUEUE_CONFIG": '{"q": {"speed": 1}}'}, "unknown keys"),
        ({"CCMON_QUEUE_CONFIG": "/nonexistent/file.json"}, "cannot read"),
        ({"CCMON_LOG_LEVEL": "loud"}, "CCMON_LOG_LEVEL"),
    ],
)
def test_bad_values_give_one_line_messages(env, needle):
    with pytest.raises(ConfigError) as err:
        load(env)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_each_concern_is_one_frozen_group_built_from_the_one_table():
    import dataclasses

    from streams.config import ENV, GROUPS, BatchSettings, KafkaSettings, TopicSettings, WebSettings

    s = load(
        {
            "CCMON_WEB_PORT": "7000",
            "CCMON_BATCH_SIZE": "10",
            "CCMON_FACTS_TOPIC": "f",
            "CCMON_KAFKA_SECURITY_PROTOCOL": "ssl",
            "CCMON_SESSION_TIMEOUT_S": "3",
        }
    )
    assert (s.web.port, s.batching.size, s.topics.facts) == (7000, 10, "f")
    assert (s.kafka.security_protocol, s.kafka.session_timeout_s) == ("SSL", 3.0)
    # what was not set keeps its documented default, group by group
    assert s.web == WebSettings(port=7000) and s.topics == TopicSettings(facts="f")
    assert s.batching == BatchSettings(size=10)
    assert s.kafka == KafkaSettings(security_protocol="SSL", session_timeout_s=3.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.web.port = 1  # type: ignore[misc]
    # every variable lands in a field that exists: a top-level one or a group's
    for var, (attr, _) in ENV.items():
        group, _, name = attr.rpartition(".")
        target = getattr(s, group) if group else s
        assert group in ("", *GROUPS) and hasattr(target, name), var


def test_overrides_name_a_group_field_like_the_table_does():
    groups: dict[str, Any] = {"web.port": 7001, "kafka.broker": "kafka://h:1"}
    s = load({"CCMON_WEB_PORT": "7000"}, **groups, partitions=4)
    assert (s.web.port, s.web.host, s.kafka.bootstrap_servers, s.partitions) == (7001, "127.0.0.1", "h:1", 4)
    with pytest.raises(TypeError):
        load({}, **{"nosuch.port": groups["web.port"]})
