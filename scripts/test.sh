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
# The tests that run `mediaspool watch` once more, each daemon on a fresh database of the
# PostgreSQL server instead of its SQLite file.
MEDIASPOOL_TEST_CATALOG=postgres cargo test --quiet --test it -- --test-threads="${TEST_THREADS:-2}" \
  daemon:: bounds:: terminal::watch_ http:: browser:: privacy::logs_ \
  store::s3_a_large_file store::s3_stopped store::s3_restarted
