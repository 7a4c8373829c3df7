# The two commands of the README, each doing its own set-up first.
PYTHON ?= python3

.PHONY: demo test unit bench

## demo: local Kafka + worker + simulator + wallboard; Ctrl-C stops everything
demo:
	@bash deploy/setup.sh demo
	$(PYTHON) -m streams demo

## test: the whole suite (unit + integration on a real local Kafka, browser tests in Chromium)
test:
	@bash deploy/setup.sh test
	$(PYTHON) -m pytest

## unit: the pure-core tests only (seconds, no broker)
unit:
	@bash deploy/setup.sh demo
	$(PYTHON) -m pytest tests/unit

## bench: throughput of the worker against a plain Kafka consumer on the same events
bench:
	@bash deploy/setup.sh demo
	$(PYTHON) -m benchmarks.throughput
