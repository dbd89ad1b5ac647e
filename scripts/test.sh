#!/usr/bin/env bash
# The whole test suite: installs what it needs (idempotently), starts the test services on free
# 127.0.0.1 ports (stopped again on exit), then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
source scripts/services.sh
s3_install
azurite_install
postgres_install
cargo build --quiet --all-targets
service_start s3
service_start azurite
service_start postgres
cargo test --quiet -- --test-threads="${TEST_THREADS:-2}"
