"""docker-compose.yml cannot run here (no Docker engine): check it statically against the files it
mounts and the names and ports in prometheus.yml, Alertmanager, Grafana provisioning and ccmon."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from streams.config import load

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def binds(service: str) -> list[tuple[Path, str]]:
    out = []
    for volume in SERVICES[service].get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            out.append((ROOT / source, target))
    return out


def published(service: str) -> dict[str, str]:
    """container port → host address of a service's ``ports``, the address as compose resolves it
    with nothing set in the environment (``${VAR:-default}`` → default)."""
    out = {}
    for entry in SERVICES[service].get("ports", []):
        resolved = re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(entry))
        parts = resolved.rsplit(":", 2)
        host, host_port, container_port = parts if len(parts) == 3 else ("", *parts)
        assert host_port == container_port, entry
        out[container_port] = host
    return out


def test_every_mounted_file_exists_and_named_volumes_are_declared():
    for name, service in SERVICES.items():
        for source, _ in binds(name):
            assert source.exists(), f"{name} mounts missing {source}"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith("./"):
                assert source in COMPOSE["volumes"], f"{name}: volume {source} not declared"


def test_prometheus_finds_the_workers_and_alertmanager():
    prom = yaml.safe_load((ROOT / "streams/resources/prometheus/prometheus.yml").read_text())
    sd = prom["scrape_configs"][0]["dns_sd_configs"][0]
    worker = SERVICES["worker"]
    assert sd["names"] == ["worker"] and "worker" in SERVICES
    assert str(sd["port"]) == worker["environment"]["CCMON_WEB_PORT"] == worker["expose"][0]
    assert "ports" not in worker  # no fixed host port, so --scale works
    assert str(load({}).web.port) == worker["environment"]["CCMON_WEB_PORT"]  # the default matches too
    assert worker["environment"]["CCMON_WEB_HOST"] == "0.0.0.0"
    target = prom["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"][0]
    host, port = target.split(":")
    assert host in SERVICES and port in published(host)
    mounted = {target: source for source, target in binds("prometheus")}
    assert mounted["/etc/prometheus/prometheus.yml"] == ROOT / "streams/resources/prometheus/prometheus.yml"
    assert mounted["/etc/prometheus/rules"] == ROOT / "streams/resources/prometheus/rules"
    assert prom["rule_files"] == ["rules/*.yml"]  # relative to /etc/prometheus


def test_grafana_provisioning_matches_services_and_mounts():
    grafana = SERVICES["grafana"]
    ds = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text())[
        "datasources"
    ][0]
    m = re.fullmatch(r"http://([a-z-]+):(\d+)", ds["url"])
    assert m and m.group(1) in SERVICES and m.group(2) in published(m.group(1))
    provider = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/ccmon.yml").read_text())["providers"][
        0
    ]
    mounted = {target: source for source, target in binds("grafana")}
    assert mounted[provider["options"]["path"]] == ROOT / "grafana/dashboards"
    assert mounted["/etc/grafana/provisioning"] == ROOT / "grafana/provisioning"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert (
        home.startswith(provider["options"]["path"])
        and (ROOT / "grafana/dashboards" / Path(home).name).exists()
    )
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    # no default admin password: compose refuses to start without one from the environment
    assert re.fullmatch(
        r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"]
    )


def test_ccmon_services_reach_kafka_and_topics_match_the_config():
    kafka = SERVICES["kafka"]
    assert kafka["image"].startswith("apache/kafka:") and "healthcheck" in kafka
    assert "broker,controller" == kafka["environment"]["KAFKA_PROCESS_ROLES"]
    advertised = kafka["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    for name in ("worker", "simulator"):
        env = SERVICES[name]["environment"]
        broker = env["CCMON_BROKER"].removeprefix("kafka://")
        assert f"PLAINTEXT://{broker}" == advertised
        settings = load({k: v for k, v in env.items() if isinstance(v, str)})
        command = SERVICES["topics"]["command"][0]
        for topic in (
            settings.calls_topic,
            settings.chats_topic,
            settings.agents_topic,
            settings.topics.dead_letter,
            settings.topics.facts,
        ):
            assert topic in command
        assert f"--partitions {settings.partitions}" in command


def test_images_are_pinned_and_the_worker_image_is_slim_non_root_and_health_checked():
    for name, service in SERVICES.items():
        if "image" in service and "build" not in service and service["image"] != "ccmon:local":
            assert re.search(r":v?\d+\.\d+", service["image"]), f"{name} image not pinned: {service['image']}"
    dockerfile = (ROOT / "deploy/Dockerfile").read_text()
    assert re.search(r"^FROM python:\d+\.\d+\.\d+-slim", dockerfile, re.M)
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.M)
    assert "HEALTHCHECK" in dockerfile and "/health" in dockerfile
    assert SERVICES["worker"]["build"]["dockerfile"] == "deploy/Dockerfile"
    for copied in re.findall(r"^COPY (?!--from)(\S+)", dockerfile, re.M):
        assert (ROOT / copied).exists(), copied
    # the image runs the installed wheel, no source tree (the wheel carries the package data)
    final = dockerfile.rsplit("\nFROM ", 1)[1]
    assert re.search(r"^RUN pip wheel .*--no-deps .* \.$", dockerfile, re.M)
    assert re.search(r"^RUN pip install .*/dist/ccmon-\*\.whl", final, re.M)
    assert re.findall(r"^COPY (\S+)", final, re.M) == ["--from=wheel"]


def test_published_ports_listen_on_loopback_unless_told_otherwise():
    """Alertmanager and Prometheus have no authentication: published on every interface, anyone on
    the LAN could silence every page. Only the operator's PUBLISH_ADDRESS widens them."""
    seen = {}
    for name in SERVICES:
        for entry in SERVICES[name].get("ports", []):
            assert str(entry).startswith("${PUBLISH_ADDRESS:-127.0.0.1}:"), f"{name} publishes {entry}"
        seen.update({port: host for port, host in published(name).items()})
    assert seen == {"9090": "127.0.0.1", "9093": "127.0.0.1", "3000": "127.0.0.1"}


#: the oldest release of each image that carries the fixes ccmon's compose relies on (Grafana 11.6
#: left patch support in 2026; Prometheus 2 and Alertmanager 0.27 get no more fixes)
PATCHED = {"prom/prometheus": (3, 16, 0), "prom/alertmanager": (0, 35, 0), "grafana/grafana": (13, 2, 0)}


def test_images_are_current_patched_releases():
    images = {s["image"].split(":")[0]: s["image"].split(":")[1] for s in SERVICES.values() if "image" in s}
    for image, oldest in PATCHED.items():
        version = tuple(int(x) for x in re.findall(r"\d+", images[image])[:3])
        assert version >= oldest, f"{image}:{images[image]} is older than {oldest}"
