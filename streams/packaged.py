"""Files ccmon ships inside its package, under ``streams/resources/``: the Maven pom that resolves
Apache Kafka, and the Prometheus config and rules (which docker-compose.yml and the promtool tests
use from the same place: one copy). Read with importlib.resources, so that an installed wheel,
a pipx install or the Docker image work exactly like a source checkout."""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable


def resource(*parts: str) -> Traversable:
    return resources.files("streams").joinpath("resources", *parts)


def kafka_pom() -> str:
    return resource("kafka", "pom.xml").read_text(encoding="utf-8")


def prometheus_rules() -> dict[str, str]:
    """Every rule file, by name, in name order (ccmon-thresholds.yml, ccmon.yml)."""
    files = sorted(
        (f for f in resource("prometheus", "rules").iterdir() if f.name.endswith(".yml")),
        key=lambda f: f.name,
    )
    return {f.name: f.read_text(encoding="utf-8") for f in files}
