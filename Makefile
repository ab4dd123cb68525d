# The two commands of the README. Everything else is a building block of these.
SHELL := /bin/bash
VENV := $(shell bash scripts/bootstrap.sh)
PY := $(VENV)/bin/python
SKUCAST := $(VENV)/bin/skucast

.PHONY: demo test lint services-up services-down train benchmarks

demo:            ## services up, a trained model, the worker, a replay of real orders; forecasts and alerts live
	bash scripts/demo.sh "$(VENV)"

test:            ## lint, types, and every test tier against real Kafka and Redis
	bash scripts/test.sh "$(VENV)"

lint:
	$(VENV)/bin/ruff check streams model worker tests benchmarks
	$(VENV)/bin/mypy

services-up:
	$(SKUCAST) services up

services-down:
	$(SKUCAST) services down

train:
	$(SKUCAST) train

benchmarks:      ## every benchmark, full runs (needs services up); QUICK=1 for the smoke versions
	$(PY) benchmarks/run_all.py $(if $(QUICK),--quick,)
