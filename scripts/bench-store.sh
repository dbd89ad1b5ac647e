#!/usr/bin/env bash
# Upload benchmarks against a local S3 server and the AWS CLI: starts the server on a free
# 127.0.0.1 port, runs `cargo bench --bench store -- ARGS` (large, small, memory), stops it.
# The server is moto (the test server) unless MEDIASPOOL_BENCH_S3=s3s-fs asks for s3s-fs, a
# server in Rust that keeps objects on disk (installed with `cargo install` on first use,
# about 9 minutes): moto is one Python process, slow enough to hide the clients' differences.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
source scripts/services.sh
case "${MEDIASPOOL_BENCH_S3:-moto}" in
  moto)
    service_start s3
    ;;
  s3s-fs)
    s3_install # the AWS CLI
    bin="$SERVICES_CACHE/s3s-fs/bin/s3s-fs"
    [ -x "$bin" ] || cargo install s3s-fs@0.14.1 --locked --features binary --root "$SERVICES_CACHE/s3s-fs"
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    mkdir -p "$SERVICES_RUN/s3s-fs-data"
    service_spawn s3s-fs "$bin" --host 127.0.0.1 --port "$port" \
      --access-key mediaspool-bench --secret-key mediaspool-bench-secret "$SERVICES_RUN/s3s-fs-data"
    for _ in $(seq 100); do
      curl -s -o /dev/null "http://127.0.0.1:$port/" && break
      sleep 0.1
    done
    export MEDIASPOOL_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
    export MEDIASPOOL_TEST_AWS_CLI="$SERVICES_CACHE/venv/bin/aws"
    ;;
  *)
    echo "MEDIASPOOL_BENCH_S3 is moto or s3s-fs" >&2
    exit 2
    ;;
esac
cargo bench --bench store -- "$@"
