# The two commands of the README, each doing its own set-up first.
PYTHON ?= python3

.PHONY: setup demo test unit

setup:
	@bash deploy/setup.sh

## demo: local Kafka + worker + simulator; Ctrl-C stops everything
demo: setup
	$(PYTHON) -m streams demo

## test: the whole suite (unit + integration on a real local Kafka)
test: setup
	$(PYTHON) -m pytest

## unit: the pure-core tests only (seconds, no broker)
unit: setup
	$(PYTHON) -m pytest tests/unit
