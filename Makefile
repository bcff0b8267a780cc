# cf-webhooks: the commands of a studio engineer's day.
#   make run       the whole pipeline on this machine (no AWS account)
#   make send      a sample event to it (or to URL=…)
#   make test      the whole test suite, installing and starting what it needs
#   make deploy    build, validate and deploy to AWS with SAM (guided the first time)
.DEFAULT_GOAL := help
SHELL := /bin/bash

ADDR   ?= 127.0.0.1:3000
URL    ?= http://$(ADDR)/
EVENT  ?= events/task.json
STACK  ?= cf-webhooks
GROUP  ?=
REGION ?= $(or $(AWS_REGION),$(AWS_DEFAULT_REGION),us-east-1)
CFWH   := cargo run --quiet --package cfwh --bin cfwh --
LAMBDA_PACKAGES := --package cf-webhooks-ingest --package cf-webhooks-consumers

# The Python tools (SAM, cfn-lint, cargo-lambda with zig, moto) live in .venv; targets
# that need them install them first (scripts/tools.sh) and put them first on PATH.
TOOLS = export PATH="$$(scripts/tools.sh):$$PATH"

.PHONY: help run send test rehearse simulate fuzz soak bench profile build sizes template schemas validate deploy logs redrive replay lint fmt clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

run: ## run ingest, queues and all consumers locally (cfwh dev on ADDR)
	$(CFWH) dev --addr $(ADDR)

send: ## sign and send EVENT (default events/task.json) to URL, like Creative Force
	$(CFWH) send --url $(URL) $(EVENT)

test: ## run the whole test suite (lints, template checks, unit, contract, AWS and emulator tests)
	./scripts/test.sh

rehearse: ## the deploy rehearsed offline: the stack created, updated and deleted in LocalStack three ways, the real bootstraps run against it
	./scripts/rehearse.sh

simulate: ## the consumer-side simulation for SECONDS (default 600) of seeds; SEED=S [EVENTS=N FAULTS=…] replays one
	cargo run --quiet --release --package cf-webhooks --features simulation --bin simulate -- \
	  $(if $(SEED),--seed $(SEED) $(if $(EVENTS),--events $(EVENTS)) $(if $(FAULTS),--faults $(FAULTS)),--seconds $(or $(SECONDS),600))

fuzz: ## run each fuzz target for FUZZ_SECONDS (default 60) with cargo fuzz
	./scripts/fuzz.sh

soak: ## 20,000 events, 10% re-deliveries, 5% failures and an SQS outage through cfwh dev over moto
	cargo build --release -p cfwh --bin cfwh
	"$$(scripts/tools.sh)/python" scripts/soak.py

bench: ## benchmarks: criterion, bootstrap sizes, load against the reference and a bare floor, the price list, memory, a profile; writes BENCHMARKS.md
	./bench/run.sh

profile: ## where cfwh dev's time goes under load: perf record on a build that keeps its symbols (target/profile)
	CARGO_TARGET_DIR=target/profile CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
		cargo build --release -p cfwh
	python3 bench/profile.py target/profile/release/cfwh

build: ## build the two Lambda bootstraps (ingest, consume) for arm64 in one cargo build (target/lambda/<name>/bootstrap)
	@$(TOOLS); cargo lambda build --release --arm64 $(LAMBDA_PACKAGES)
	@$(MAKE) --no-print-directory sizes

sizes: ## list the sizes of the built bootstraps
	@found=; for b in target/lambda/*/bootstrap; do \
	  [ -f "$$b" ] || continue; found=1; f=$$(basename $$(dirname $$b)); \
	  awk -v f=$$f -v s=$$(stat -c %s $$b) -v z=$$(gzip -9 -c $$b | wc -c) \
	    'BEGIN { printf "  %-18s %6.2f MiB   zipped %5.2f MiB\n", f, s / 1048576, z / 1048576 }'; \
	done; [ -n "$$found" ] || echo "  nothing built yet (make build)"

template: ## write template.yaml from the code's own definitions (cfwh template)
	$(CFWH) template

schemas: ## write schemas/*.schema.json from the baseline of what Creative Force documents (cfwh schemas)
	$(CFWH) schemas

validate: ## check template.yaml: up to date, sam validate --lint, cfn-lint, checkov (offline)
	@$(TOOLS); AWS_REGION=$(REGION) scripts/validate.sh

deploy: build validate ## deploy STACK with SAM: guided the first time (writes samconfig.toml), then as saved (QUEUE_TYPE=fifo|standard to choose)
	@$(TOOLS); scripts/deploy.sh $(STACK) $(REGION) $(QUEUE_TYPE)

logs: ## tail the logs of every function of STACK (sam logs)
	@$(TOOLS); SAM_CLI_TELEMETRY=0 sam logs --stack-name $(STACK) --region $(REGION) --tail

redrive: ## move GROUP's dead-letter queue of STACK back to its queue
	@test -n "$(GROUP)" || { echo "make redrive: set GROUP (one of the routes \`cfwh groups\` lists)"; exit 2; }
	$(CFWH) redrive --group $(GROUP) --queue-prefix $(STACK)

replay: ## send GROUP's archived events since SINCE (until UNTIL) from BUCKET to STACK's queue again, as one replay run
	@test -n "$(GROUP)" -a -n "$(SINCE)" -a -n "$(BUCKET)" || { echo "make replay: set GROUP, SINCE (2026-11-28, or an age: 24h) and BUCKET (the stack's output DestinationArchiveBucket)"; exit 2; }
	$(CFWH) replay --group $(GROUP) --since $(SINCE) $(if $(UNTIL),--until $(UNTIL)) --bucket $(BUCKET) --queue-prefix $(STACK)

lint: ## rustfmt check and clippy
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --all-features -- -D warnings

fmt: ## format the code
	cargo fmt --all

clean: ## remove build output
	cargo clean
