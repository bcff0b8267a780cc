# cf-webhooks: the commands of a studio engineer's day.
#   make run    the whole pipeline on this machine (no AWS account)
#   make send   a sample event to it (or to URL=…)
#   make test   the whole test suite, installing what it needs
.DEFAULT_GOAL := help
SHELL := /bin/bash

ADDR  ?= 127.0.0.1:3000
URL   ?= http://$(ADDR)/
EVENT ?= events/task.json
CFWH  := cargo run --quiet --package cfwh --bin cfwh --

.PHONY: help run send test build lint fmt clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

run: ## run ingest, queues and all consumers locally (cfwh dev on ADDR)
	$(CFWH) dev --addr $(ADDR)

send: ## sign and send EVENT (default events/task.json) to URL, like Creative Force
	$(CFWH) send --url $(URL) $(EVENT)

test: ## run the whole test suite (formatting, lints, unit, contract and end-to-end tests)
	./scripts/test.sh

build: ## build every binary in release mode
	cargo build --workspace --release

lint: ## rustfmt check and clippy
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --all-features -- -D warnings

fmt: ## format the code
	cargo fmt --all

clean: ## remove build output
	cargo clean
