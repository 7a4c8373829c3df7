#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine: system packages (when root), then ccmon itself in
# the project's virtual environment .venv. `make demo|test|unit|bench` call it; safe to run again.
# Usage: deploy/setup.sh [demo|unit|test]
#   demo: Java and Maven (the local Kafka broker); ccmon in .venv
#   unit: ccmon and its test libraries in .venv (pytest, hypothesis, ruff, mypy, ...), plus
#         Prometheus + Alertmanager (promtool, amtool: the static checks of rules and routes), and
#         Helm and deploy/helm/validate built with Go into .tools/bin (the Helm chart's checks)
#   test: demo and unit, plus Chromium (browser tests of the wallboard) and a PostgreSQL server
#         (the Asterisk realtime-table tests start their own on a free port)
# The machine's python3 (or $PYTHON) only creates .venv: nothing is installed into it, so a
# PEP 668 "externally managed" interpreter (Debian 12, Ubuntu 23.04+) is fine.
set -euo pipefail
cd "$(dirname "$0")/.."
purpose="${1:-demo}"
case "$purpose" in demo|unit|test) ;; *) echo "usage: deploy/setup.sh [demo|unit|test]" >&2; exit 2 ;; esac
PYTHON="${PYTHON:-python3}"
venv=.venv

if ! command -v "$PYTHON" >/dev/null 2>&1; then
  echo "setup: $PYTHON not found; install Python 3.11+ (apt-get install -y python3) and retry" >&2
  exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: ccmon needs Python 3.11+, $PYTHON is $("$PYTHON" -V 2>&1); set PYTHON=python3.X and retry" >&2
  exit 1
fi

need_apt=()
# Debian ships venv's pip bootstrap (ensurepip) in python3-venv
if [ ! -x "$venv/bin/python" ] && ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  need_apt+=(python3-venv)
fi
if [ "$purpose" != unit ]; then
  command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
  command -v curl >/dev/null 2>&1 || need_apt+=(curl)
fi
if [ "$purpose" != demo ]; then
  command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
  command -v amtool >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
fi
if [ "$purpose" = test ]; then
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
  compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || need_apt+=(postgresql)
fi
if [ "${#need_apt[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "setup: installing ${need_apt[*]} (apt-get)" >&2
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    echo "setup: missing ${need_apt[*]}; install them (sudo apt-get install -y ${need_apt[*]}) and retry" >&2
    exit 1
  fi
fi

if [ -e "$venv" ] && ! "$venv/bin/python" -c '' >/dev/null 2>&1; then
  echo "setup: $venv is broken (its Python is gone?); creating it again" >&2
  rm -rf "$venv"
fi
if [ ! -e "$venv" ]; then
  echo "setup: creating the virtual environment $venv ($("$PYTHON" -V 2>&1))" >&2
  "$PYTHON" -m venv "$venv"
fi

# demo needs ccmon only; unit and test also its test libraries (which include ccmon's)
fresh() { [ -f "$venv/.ccmon-setup-$1" ] && [ ! pyproject.toml -nt "$venv/.ccmon-setup-$1" ]; }
extras=runtime spec="."; [ "$purpose" = demo ] || extras=test spec=".[test]"
if ! fresh "$extras" && ! fresh test; then
  echo "setup: installing ccmon ($spec) and its Python dependencies into $venv (pip)" >&2
  "$venv/bin/python" -m pip install -q --disable-pip-version-check -e "$spec"
  touch "$venv/.ccmon-setup-$extras"
fi

# Helm and the chart's offline validator (deploy/helm/validate), built from the Go module proxy
# into .tools/bin once; Go's build cache makes a rebuild after a fresh clone a link step only.
# The first build of Helm takes minutes (docs/development.md says how long).
HELM_VERSION=v3.21.4
if [ "$purpose" != demo ]; then
  go="$(command -v go || echo /usr/local/go/bin/go)"
  if [ ! -x "$go" ]; then
    echo "setup: Go not found (needed to build Helm for the chart's tests); install Go 1.24+ and retry" >&2
    exit 1
  fi
  tools="$PWD/.tools/bin"
  mkdir -p "$tools"
  if [ ! -x "$tools/helm" ] || ! "$tools/helm" version --template '{{.Version}}' 2>/dev/null | grep -qx "${HELM_VERSION%.*}"; then
    echo "setup: building Helm $HELM_VERSION into $tools (go install; the first build takes minutes)" >&2
    GOBIN="$tools" GOFLAGS=-mod=mod "$go" install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  fi
  if [ ! -x "$tools/validate" ] || [ -n "$(find deploy/helm/validate -newer "$tools/validate" -type f)" ]; then
    echo "setup: building the chart's validator into $tools (go install)" >&2
    (cd deploy/helm/validate && GOBIN="$tools" "$go" install .)
  fi
fi
