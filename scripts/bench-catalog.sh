#!/usr/bin/env bash
# The catalog benchmark on both backends: starts a throwaway PostgreSQL on a free 127.0.0.1 port
# (stopped on exit), then `cargo bench --bench catalog -- [scale] [daemons]` (both by default).
# MEDIASPOOL_BENCH_RECORDS sets the catalog size of `scale` (1,000,000).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/services.sh
service_start postgres
cargo bench --bench catalog -- "$@"
