#!/usr/bin/env bash
# Upload benchmarks against a local S3 server (moto) and the AWS CLI: starts the server on a
# free 127.0.0.1 port, runs `cargo bench --bench store -- ARGS` (large, small, memory), stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
source scripts/services.sh
service_start s3
cargo bench --bench store -- "$@"
