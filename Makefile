# The commands of the README, each doing its own set-up first (deploy/setup.sh): the project's
# virtual environment .venv, created with the machine's python3 (or PYTHON=...), holds ccmon and
# its dependencies; the system interpreter is never installed into.
PYTHON ?= python3
VENV := .venv/bin/python
export PYTHON

.PHONY: demo test unit bench

## demo: local Kafka + worker + simulator + wallboard; Ctrl-C stops everything
demo:
	@bash deploy/setup.sh demo
	$(VENV) -m streams demo

## test: the whole suite (unit + integration on a real local Kafka, browser tests in Chromium)
test:
	@bash deploy/setup.sh test
	$(VENV) -m pytest

## unit: everything that needs no broker (about a minute): tests/unit (pure, in-process) and
## tests/static (compose, promtool, amtool, dashboards, the process harness, ruff and mypy)
unit:
	@bash deploy/setup.sh unit
	$(VENV) -m pytest tests/unit tests/static

## bench: throughput of the worker against a plain Kafka consumer on the same events, then the
## prediction's back-test (EWT error by estimator, predictive vs reactive service-level alert)
bench:
	@bash deploy/setup.sh demo
	$(VENV) -m pip install -q --disable-pip-version-check -e ".[bench]"
	$(VENV) -m benchmarks.throughput
	$(VENV) -m benchmarks.ewt_backtest --days 3
