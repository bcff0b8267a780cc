#!/usr/bin/env bash
# `make rehearse` (and a step of `make test`): the deploy rehearsed offline. Installs
# LocalStack into .venv-localstack (scripts/localstack.lock, hash-locked) with Python 3.13,
# builds the bootstraps for this machine, then runs scripts/rehearse.py with the project's
# own tools (.venv: moto, cfn-lint, SAM) first on PATH. Arguments go to it.
set -euo pipefail
cd "$(dirname "$0")/.."
# LocalStack 2026.3 needs Python 3.13: on PATH, or under pyenv (these machines hold one
# there without putting it on PATH), or $CFWH_PYTHON.
PYTHON=${CFWH_PYTHON:-}
if [ -z "$PYTHON" ]; then
  for candidate in python3.13 "$(pyenv root 2>/dev/null || echo "$HOME/.pyenv")"/versions/3.13*/bin/python3.13 /usr/bin/python3.13; do
    if "$candidate" -c 'import sys, venv; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then
      PYTHON=$candidate
      break
    fi
  done
fi
if [ -z "$PYTHON" ]; then
  cat >&2 <<'MSG'
rehearse: the deploy rehearsal needs Python 3.13 (LocalStack 2026.3 requires it) and none was found
  (python3.13 on PATH, pyenv's versions/3.13*, /usr/bin/python3.13). Install one, e.g.
  `pyenv install 3.13` or Debian 13's `apt-get install python3.13-venv`, or name it with
  CFWH_PYTHON=/path/to/python3.13; `make test` runs without the rehearsal with CFWH_REHEARSE=0.
MSG
  exit 1
fi
# A venv made by another interpreter is made again.
if [ -x .venv-localstack/bin/python ] && ! .venv-localstack/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))'; then
  rm -rf .venv-localstack
fi
LOCALSTACK_BIN=$(CFWH_PYTHON="$PYTHON" CFWH_VENV="$PWD/.venv-localstack" CFWH_LOCK=scripts/localstack.lock scripts/tools.sh)
VENV_BIN=$(scripts/tools.sh)
export PATH="$VENV_BIN:$PATH"
# The same features as the test build, so that nothing is compiled again after it.
cargo build --quiet --workspace --all-features --bin ingest --bin consume --bin cfwh
exec "$VENV_BIN/python" scripts/rehearse.py --localstack-python "$LOCALSTACK_BIN/python" "$@"
