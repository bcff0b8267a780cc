#!/usr/bin/env bash
# Checks template.yaml offline, as make validate and make test do: it is what the code
# writes (`cfwh template --check`, with the IAM checks; `cfwh schemas --check` for the
# JSON Schemas of schemas/), cfn-lint, sam validate --lint,
# and the checkov policy linter (scripts/checkov.sh). Expects the project's venv on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
REGION=${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}
cargo run --quiet --package cfwh --bin cfwh -- template --check
# The JSON Schemas of schemas/: what `cfwh schemas` writes from schemas/baseline/.
cargo run --quiet --package cfwh --bin cfwh -- schemas --check
AWS_DEFAULT_REGION=$REGION cfn-lint template.yaml
AWS_DEFAULT_REGION=$REGION SAM_CLI_TELEMETRY=0 sam validate --lint -t template.yaml
scripts/checkov.sh
