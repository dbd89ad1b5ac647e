#!/usr/bin/env bash
# Retention benchmark against a local S3 server (moto): starts the server on a free 127.0.0.1
# port, runs `cargo bench --bench purge -- [RECORDS]` (default 100000), stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
source scripts/services.sh
service_start s3
cargo bench --bench purge -- "$@"
