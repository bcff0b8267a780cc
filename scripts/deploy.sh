#!/usr/bin/env bash
# `make deploy`: deploys the stack with SAM, guided the first time (writes
# samconfig.toml), then as saved. QUEUE_TYPE (fifo or standard) chooses the queues and is
# saved with the other parameters; a stack deployed before that parameter must choose.
# Usage: scripts/deploy.sh STACK REGION [QUEUE_TYPE]
set -euo pipefail
stack=$1 region=$2 queue_type=${3:-}
export SAM_CLI_TELEMETRY=0
if [ -f samconfig.toml ] && [ -z "$queue_type" ] && ! grep -q QueueType samconfig.toml; then
  echo "make deploy: this stack was deployed before the QueueType parameter, whose default (fifo) replaces its queues."
  echo "  make deploy QUEUE_TYPE=standard   keeps the queues as they are"
  echo "  make deploy QUEUE_TYPE=fifo       moves to FIFO queues: docs/guarantees.md, \"Moving to FIFO queues\", first"
  exit 2
elif [ -f samconfig.toml ] && [ -n "$queue_type" ]; then
  # The saved QueueType, if any, is replaced by the one chosen.
  sed -i -E '/^parameter_overrides/s/ ?QueueType=(\\"[a-z]*\\"|[a-z]*)//' samconfig.toml
  if grep -q '^parameter_overrides = "' samconfig.toml; then
    sed -i "s/^parameter_overrides = \"/parameter_overrides = \"QueueType=$queue_type /" samconfig.toml
    sam deploy
  else
    sam deploy --parameter-overrides "QueueType=$queue_type" --save-params
  fi
elif [ -f samconfig.toml ]; then
  sam deploy
else
  overrides=()
  [ -n "$queue_type" ] && overrides=(--parameter-overrides "QueueType=$queue_type")
  sam deploy --guided --stack-name "$stack" --region "$region" --capabilities CAPABILITY_IAM --resolve-s3 "${overrides[@]}"
fi
