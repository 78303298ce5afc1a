#!/usr/bin/env bash
# The whole test suite from a fresh machine: installs what the tests need, then runs them.
# Used by the README and by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real Postfix/Dovecot for the production tests (Debian packages; needs root).
if [ -x .ci/install-mail-tools ] && [ "$(id -u)" = 0 ]; then
  .ci/install-mail-tools
fi

python3 -m pip install --quiet --disable-pip-version-check -e '.[dev]'

status=0
python3 -m pytest -n 2 "$@" || status=$?
if [ "$status" = 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$status"
