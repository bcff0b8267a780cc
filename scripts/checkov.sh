#!/usr/bin/env bash
# The policy linter over template.yaml: checkov, offline (no download, no account), in a
# venv of its own (.venv-checkov, installed from scripts/checkov.lock by tools.sh), with
# the skips of scripts/checkov.yaml. Fails on any finding that is neither fixed nor skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=$(CFWH_VENV="$PWD/.venv-checkov" CFWH_LOCK=scripts/checkov.lock scripts/tools.sh)
BC_SKIP_MAPPING=TRUE CHECKOV_NO_UPDATE_CHECK=1 "$BIN/checkov" --config-file scripts/checkov.yaml -f template.yaml
