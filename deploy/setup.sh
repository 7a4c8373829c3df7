#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine: system packages (when root), then ccmon itself.
# Usage: deploy/setup.sh [demo|test]. `make demo` and `make test` call it; safe to run again.
#   demo: Java and Maven (the local Kafka broker)
#   test: those, plus Chromium (browser tests of the wallboard) and Prometheus + Alertmanager (promtool, amtool)
set -euo pipefail
cd "$(dirname "$0")/.."
purpose="${1:-demo}"

need_apt=()
command -v java >/dev/null 2>&1 || need_apt+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || need_apt+=(maven)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
if [ "$purpose" = test ]; then
  command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
  command -v promtool >/dev/null 2>&1 || need_apt+=(prometheus)
  command -v amtool >/dev/null 2>&1 || need_apt+=(prometheus-alertmanager)
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

PYTHON="${PYTHON:-python3}"
stamp=".setup-stamp"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || ! "$PYTHON" -c "import streams, faust, aiokafka" 2>/dev/null; then
  echo "setup: installing ccmon and its Python dependencies (pip)" >&2
  "$PYTHON" -m pip install -q --disable-pip-version-check -e ".[test]"
  touch "$stamp"
fi
