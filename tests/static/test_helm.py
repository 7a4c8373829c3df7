"""The Helm chart (deploy/helm/ccmon): ``helm lint``, ``helm template`` with the default values and
with every option on, every rendered object decoded strictly into the Kubernetes, Prometheus
operator and KEDA Go types (deploy/helm/validate, offline), and the rendered rules and dashboards
equal to the packaged files. Helm and the validator are built by deploy/setup.sh into .tools/bin."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "ccmon"
TOOLS = ROOT / ".tools" / "bin"
HELM, VALIDATE = TOOLS / "helm", TOOLS / "validate"
RULES = ROOT / "streams" / "resources" / "prometheus" / "rules"
DASHBOARDS = ROOT / "grafana" / "dashboards"
KUBE = "1.33.0"

#: every option on: the optional components, Kafka credentials, KEDA, the data source
EVERYTHING = {
    "webhooks.enabled": "true",
    "webhooks.secretEnv[0].name": "PLATFORM_SIGNING_KEY",
    "webhooks.secretEnv[0].secretName": "platform",
    "webhooks.secretEnv[0].key": "signing-key",
    "asterisk.enabled": "true",
    "asterisk.database": "postgresql://ccmon@pg:5432/asterisk",
    "asterisk.passwordSecret.name": "pg",
    "keda.enabled": "true",
    "grafana.datasource.enabled": "true",
    "kafka.securityProtocol": "SASL_SSL",
    "kafka.saslMechanism": "SCRAM-SHA-512",
    "kafka.username": "ccmon",
    "kafka.passwordSecret.name": "kafka",
    "kafka.caSecret.name": "kafka-ca",
    "worker.persistence.enabled": "false",
    "env.CCMON_TIMEZONE": "Europe/Paris",
}


def tool(path: Path) -> str:
    assert path.exists(), f"{path} is missing: run deploy/setup.sh unit (it builds it with go install)"
    return str(path)


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool(HELM), *args], capture_output=True, text=True, timeout=120)


def render(values: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    sets = [arg for k, v in (values or {}).items() for arg in ("--set", f"{k}={v}")]
    return helm("template", "ccmon", str(CHART), "--kube-version", KUBE, *sets)


def objects(values: dict[str, str] | None = None) -> list[dict]:
    rendered = render(values)
    assert rendered.returncode == 0, rendered.stderr
    return [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]


def validate(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool(VALIDATE)], input=text, capture_output=True, text=True, timeout=60)


def test_helm_lint_passes_strict():
    for values in ({}, EVERYTHING):
        sets = [arg for k, v in values.items() for arg in ("--set", f"{k}={v}")]
        linted = helm("lint", "--strict", "--kube-version", KUBE, str(CHART), *sets)
        assert linted.returncode == 0, linted.stdout + linted.stderr


@pytest.mark.parametrize("values", [{}, EVERYTHING], ids=["defaults", "everything"])
def test_every_rendered_object_decodes_strictly_into_its_api_type(values):
    rendered = render(values)
    assert rendered.returncode == 0, rendered.stderr
    checked = validate(rendered.stdout)
    assert checked.returncode == 0, checked.stderr
    kinds = sorted(line.split()[1] for line in checked.stdout.splitlines())
    expected = ["ConfigMap"] * 4 + ["PodDisruptionBudget", "PrometheusRule", "PrometheusRule"]
    expected += ["Service", "ServiceMonitor", "StatefulSet"]
    if values:
        expected += [
            "ConfigMap",
            "Deployment",
            "Deployment",
            "PersistentVolumeClaim",  # the Asterisk ingester's state file
            "PersistentVolumeClaim",  # the webhook receiver's
            "ScaledObject",
            "Service",
        ]
    assert kinds == sorted(expected)


def test_the_validator_rejects_unknown_fields_wrong_types_and_unknown_kinds():
    ok = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  x: y\n"
    assert validate(ok).returncode == 0
    for bad in (
        ok + "dta:\n  x: y\n",  # a misspelt field
        ok.replace("kind: ConfigMap", "kind: ConfigMapp"),
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: a\nspec:\n  replicas: two\n",
        "apiVersion: monitoring.coreos.com/v1\nkind: ServiceMonitor\nmetadata:\n  name: a\n"
        "spec:\n  endpoints:\n    - port: http\n      intervall: 15s\n",
        "apiVersion: keda.sh/v1alpha1\nkind: ScaledObject\nmetadata:\n  name: a\nspec:\n"
        "  scaleTargetRef:\n    name: w\n  maxReplicas: 3\n",
        ok.replace("name: a", "name: A_b"),
    ):
        assert validate(bad).returncode == 1, bad


def test_the_rendered_rules_are_the_packaged_rule_files():
    rules = {
        o["metadata"]["annotations"]["ccmon.io/source"]: o["spec"]
        for o in objects()
        if o["kind"] == "PrometheusRule"
    }
    packaged = {
        f"streams/resources/prometheus/rules/{f.name}": yaml.safe_load(f.read_text())
        for f in RULES.glob("*.yml")
    }
    assert len(packaged) >= 2 and rules == packaged


def test_the_rendered_dashboards_are_the_packaged_files_with_the_sidecar_label():
    maps = [o for o in objects() if o["kind"] == "ConfigMap"]
    assert all(m["metadata"]["labels"]["grafana_dashboard"] == "1" for m in maps)
    rendered = {name: text for m in maps for name, text in m["data"].items()}
    packaged = {f.name: f.read_text() for f in DASHBOARDS.glob("*.json")}
    assert len(packaged) >= 4 and rendered == packaged
    assert all(json.loads(text)["uid"] for text in rendered.values())


def test_the_worker_runs_non_root_read_only_ready_on_health_and_hands_over_on_sigterm():
    by_kind = {o["kind"]: o for o in objects()}
    sts = by_kind["StatefulSet"]
    pod = sts["spec"]["template"]["spec"]
    (worker,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert worker["securityContext"]["readOnlyRootFilesystem"] is True
    assert worker["readinessProbe"]["httpGet"]["path"] == "/health"
    assert pod["terminationGracePeriodSeconds"] >= 30
    assert {m["mountPath"] for m in worker["volumeMounts"]} >= {"/data", "/tmp"}
    assert worker["resources"]["requests"]["memory"] and worker["resources"]["limits"]["memory"]
    env = {e["name"]: e.get("value") for e in worker["env"]}
    assert env["CCMON_DATA_DIR"] == "/data" and env["CCMON_REPLICATION_FACTOR"] == "3"
    assert by_kind["PodDisruptionBudget"]["spec"]["maxUnavailable"] == 1
    assert by_kind["ServiceMonitor"]["spec"]["endpoints"][0]["path"] == "/metrics"
    # a worker that cannot reach Kafka is not ready, and must still be scraped (ccmon_broker_up 0)
    assert by_kind["Service"]["spec"]["publishNotReadyAddresses"] is True


def test_secrets_come_from_secrets_only():
    rendered = objects(EVERYTHING)
    for o in rendered:
        if o["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for c in o["spec"]["template"]["spec"]["containers"]:
            for e in c.get("env", []):
                if any(w in e["name"] for w in ("PASSWORD", "SECRET", "KEY", "TOKEN")) and not e[
                    "name"
                ].endswith("_FILE"):
                    assert "secretKeyRef" in e.get("valueFrom", {}), (o["metadata"]["name"], e)
    asterisk = next(
        o for o in rendered if o["metadata"]["name"].endswith("-asterisk") and o["kind"] == "Deployment"
    )
    env = asterisk["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "PGPASSWORD", "valueFrom": {"secretKeyRef": {"name": "pg", "key": "password"}}} in env


def test_keda_scales_the_worker_and_never_beyond_the_partition_count():
    scaled = next(o for o in objects(EVERYTHING) if o["kind"] == "ScaledObject")
    assert scaled["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    trigger = scaled["spec"]["triggers"][0]
    assert trigger["type"] == "kafka" and trigger["metadata"]["consumerGroup"] == "ccmon"
    assert trigger["metadata"]["bootstrapServers"] == "kafka:9092"
    assert scaled["spec"]["maxReplicaCount"] <= 8
    too_many = render({**EVERYTHING, "keda.maxReplicaCount": "9"})
    assert too_many.returncode != 0 and "exceeds kafka.partitions" in too_many.stderr
    with_keda = next(o for o in objects(EVERYTHING) if o["kind"] == "StatefulSet")
    assert "replicas" not in with_keda["spec"]  # KEDA owns the count


def test_the_webhook_receiver_is_one_replica_with_its_state_file_on_a_claim():
    # the receiver keeps the platforms' state (libredesk's held replies, Twilio's per-task steps,
    # Chatwoot's reopenings): two pods would split a task's steps, a restart without the state
    # file would lose what was held (README.md)
    rendered = objects(EVERYTHING)
    receiver = next(
        o for o in rendered if o["kind"] == "Deployment" and o["metadata"]["name"] == "ccmon-webhooks"
    )
    assert receiver["spec"]["replicas"] == 1
    assert receiver["spec"]["strategy"] == {"type": "Recreate"}  # never two at once, not even in an update
    pod = receiver["spec"]["template"]["spec"]
    args = pod["containers"][0]["args"]
    state_file = Path(args[args.index("--state-file") + 1])
    mount = next(m for m in pod["containers"][0]["volumeMounts"] if state_file.is_relative_to(m["mountPath"]))
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    claim = volume["persistentVolumeClaim"]["claimName"]
    assert any(o["kind"] == "PersistentVolumeClaim" and o["metadata"]["name"] == claim for o in rendered)

    ephemeral = objects({**EVERYTHING, "webhooks.persistence.enabled": "false"})
    receiver = next(
        o for o in ephemeral if o["metadata"]["name"] == "ccmon-webhooks" and o["kind"] == "Deployment"
    )
    assert {"name": mount["name"], "emptyDir": {}} in receiver["spec"]["template"]["spec"]["volumes"]
    assert not any(o["kind"] == "PersistentVolumeClaim" and o["metadata"]["name"] == claim for o in ephemeral)

    for replicas in ("2", "0"):
        refused = render({**EVERYTHING, "webhooks.replicas": replicas})
        assert (
            refused.returncode != 0
            and f"webhooks.replicas {replicas}: the webhook receiver runs as one replica" in refused.stderr
        )
