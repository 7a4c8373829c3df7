import pytest

from streams.config import ConfigError, load


def test_defaults_match_the_spec():
    s = load({})
    assert s.broker == "kafka://127.0.0.1:9092" and s.web_port == 6066
    assert (s.calls_topic, s.chats_topic, s.agents_topic, s.dead_letter_topic) == (
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
    assert s.bootstrap_servers == "127.0.0.1:9092"


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
    assert s.bootstrap_servers == "k1:9092,k2:9093"
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
