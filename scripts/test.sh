#!/usr/bin/env bash
# The whole test suite: installs what it needs (idempotently), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --quiet --all-targets
cargo test --quiet -- --test-threads="${TEST_THREADS:-2}"
