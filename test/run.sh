#!/usr/bin/env bash
# `npm test`: type-check, every test on SQLite, then the integration suite again on a fresh
# PostgreSQL database per server (tests that choose their engine themselves run once).
set -euo pipefail
cd "$(dirname "$0")/.."
tsc --noEmit
node --import tsx --test --test-timeout=120000 $(find test -name '*.test.ts' | sort)
echo "--- the integration suite on PostgreSQL ---"
HERALD_TEST_ENGINE=postgres node --import tsx --test --test-timeout=120000 \
  $(find test/integration -name '*.test.ts' | grep -v -e crash -e multiprocess -e outbox -e postgres-story | sort)
