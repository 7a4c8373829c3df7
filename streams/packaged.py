"""Files ccmon ships inside its package, under ``streams/resources/``: the Maven pom that resolves
Apache Kafka, and the Prometheus config and rules (which docker-compose.yml and the promtool tests
use from the same place: one copy). Read with importlib.resources, so that an installed wheel,
a pipx install or the Docker image work exactly like a source checkout. Also which build of the
pure core this install runs: the wheel's is compiled with mypyc (setup.py), a source install's is
interpreted, and the two compute the same, so only the speed tells them apart otherwise."""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path


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


def core_build() -> str:
    """``compiled`` when the pure core imported as mypyc's extension modules, else ``interpreted``:
    logged at the worker's start and shown on /health, so a benchmark (or an operator) knows which
    one ran instead of guessing from the rate."""
    import streams.core.intake

    return "interpreted" if Path(streams.core.intake.__file__ or "").suffix == ".py" else "compiled"
