#!/usr/bin/env bash
# container-check.sh: build mediaspool's Containerfile, run the image as the README does, drop
# a real media file into the volume's spool, wait for its record, check /healthz, /readyz,
# /metrics and the status page, stop it (SIGTERM, 60 s grace) and check it exited cleanly,
# then remove the container and its volume (the image is kept). Exits non-zero on any failure.
#
# Usage: container-check.sh [SRC_DIR]     (default: the git checkout this is run from, else .)
# Needs: podman (or ENGINE=docker), curl, and ffmpeg unless MEDIA_FILE names an existing file.
# The base images (rust:1-bookworm, debian:bookworm-slim) must be pullable or already local.
#
# Environment (all optional):
#   ENGINE=podman        container CLI
#   IMAGE=mediaspool     image tag to build and run
#   NAME=mediaspool-check  container name; VOLUME=<NAME> volume name
#   PORT=19464           host port on 127.0.0.1 published to the container's 9464
#   TOKEN=change-me      MEDIASPOOL_HTTP__TOKEN
#   SKIP_BUILD=1         use the existing IMAGE
#   BUILD_ARGS, RUN_ARGS extra flags for `build` / `run` (e.g. RUN_ARGS="--network host")
#   MEDIA_FILE           file to drop (default: a 3 s Opus voice note made with ffmpeg)
#   RECORD_TIMEOUT=120   seconds to wait for the record; READY_TIMEOUT=60 for /readyz
set -euo pipefail

ENGINE=${ENGINE:-podman}
IMAGE=${IMAGE:-mediaspool}
NAME=${NAME:-mediaspool-check}
VOLUME=${VOLUME:-$NAME}
PORT=${PORT:-19464}
TOKEN=${TOKEN:-change-me}
RECORD_TIMEOUT=${RECORD_TIMEOUT:-120}
READY_TIMEOUT=${READY_TIMEOUT:-60}
BUILD_ARGS=${BUILD_ARGS:-}
RUN_ARGS=${RUN_ARGS:-}
SRC=${1:-$(git rev-parse --show-toplevel 2>/dev/null || pwd)}
BASE="http://127.0.0.1:${PORT}"

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

TMP=$(mktemp -d)
created=0
cleanup() {
    rc=$?
    if [ "$created" = 1 ]; then
        if [ "$rc" != 0 ]; then
            echo "--- container logs (last 40 lines) ---" >&2
            "$ENGINE" logs --tail 40 "$NAME" >&2 2>&1 || true
        fi
        "$ENGINE" rm -f -t 0 "$NAME" >/dev/null 2>&1 || "$ENGINE" rm -f "$NAME" >/dev/null 2>&1 || true
        "$ENGINE" volume rm -f "$VOLUME" >/dev/null 2>&1 || true
    fi
    rm -rf "$TMP"
    if [ "$rc" = 0 ]; then echo "container-check: OK"; else echo "container-check: FAILED (exit $rc)" >&2; fi
    exit "$rc"
}
trap cleanup EXIT

command -v "$ENGINE" >/dev/null || fail "$ENGINE not found"
command -v curl >/dev/null || fail "curl not found"
[ -f "$SRC/Containerfile" ] || fail "no Containerfile in $SRC"

# ---------------------------------------------------------------------------------------- build
if [ "${SKIP_BUILD:-0}" != 1 ]; then
    step "build: $ENGINE build $BUILD_ARGS -t $IMAGE -f Containerfile $SRC"
    start=$(date +%s)
    # shellcheck disable=SC2086
    (cd "$SRC" && "$ENGINE" build $BUILD_ARGS -t "$IMAGE" -f Containerfile .) || fail "build failed"
    echo "build took $(( $(date +%s) - start )) s"
fi
"$ENGINE" image inspect "$IMAGE" >/dev/null 2>&1 || fail "no image $IMAGE"
"$ENGINE" images "$IMAGE"

# ------------------------------------------------------------------------------------------ run
if "$ENGINE" container inspect "$NAME" >/dev/null 2>&1; then fail "a container named $NAME already exists"; fi
if "$ENGINE" volume inspect "$VOLUME" >/dev/null 2>&1; then fail "a volume named $VOLUME already exists"; fi
step "run: $ENGINE run -d --name $NAME -v $VOLUME:/data -p 127.0.0.1:$PORT:9464 -e MEDIASPOOL_HTTP__TOKEN=… $RUN_ARGS $IMAGE"
created=1
# shellcheck disable=SC2086
"$ENGINE" run -d --name "$NAME" -v "$VOLUME:/data" -p "127.0.0.1:$PORT:9464" \
    -e MEDIASPOOL_HTTP__TOKEN="$TOKEN" $RUN_ARGS "$IMAGE" >/dev/null || fail "run failed"

step "wait for /readyz (up to ${READY_TIMEOUT} s)"
ready=""
for _ in $(seq "$READY_TIMEOUT"); do
    [ "$("$ENGINE" container inspect -f '{{.State.Running}}' "$NAME")" = true ] || fail "container exited: $("$ENGINE" logs "$NAME" 2>&1 | tail -20)"
    if ready=$(curl -fsS --max-time 5 "$BASE/readyz" 2>/dev/null); then break; fi
    ready=""; sleep 1
done
[ -n "$ready" ] || fail "/readyz not 200 after ${READY_TIMEOUT} s: $(curl -sS --max-time 5 "$BASE/readyz" 2>&1 || true)"
health=$(curl -fsS --max-time 5 "$BASE/healthz") || fail "/healthz not 200"
echo "/healthz: $health"
echo "/readyz:  $ready"
[ "$health" = ok ] || fail "/healthz said '$health', expected 'ok'"
[ "$ready" = ready ] || fail "/readyz said '$ready', expected 'ready'"

# ----------------------------------------------------------------------------------- drop a file
MEDIA_FILE=${MEDIA_FILE:-}
if [ -z "$MEDIA_FILE" ]; then
    command -v ffmpeg >/dev/null || fail "ffmpeg not found (or set MEDIA_FILE)"
    MEDIA_FILE="$TMP/check-note.ogg"
    ffmpeg -hide_banner -loglevel error -y -f lavfi -i sine=frequency=440:duration=3 -ac 1 -ar 16000 -c:a libopus -b:a 16k "$MEDIA_FILE" \
        || fail "ffmpeg could not make a test file"
fi
[ -s "$MEDIA_FILE" ] || fail "no media file $MEDIA_FILE"
drop=$(basename "$MEDIA_FILE")
step "drop $drop into /data/spool/incoming/ (written as .$drop.part by the container's user, then renamed)"
# Through the container, so the producer is the image's user (uid 10001) and it works with a
# remote engine too; a producer on the host would write into the volume's mountpoint the same way.
"$ENGINE" exec -i "$NAME" sh -c 'set -e; f=/data/spool/incoming/"$1"; cat > "/data/spool/incoming/.$1.part"; mv "/data/spool/incoming/.$1.part" "$f"' sh "$drop" < "$MEDIA_FILE" \
    || fail "could not write into the spool"

step "wait for a record in /data/records.ndjson (up to ${RECORD_TIMEOUT} s)"
record=""
for _ in $(seq "$RECORD_TIMEOUT"); do
    record=$("$ENGINE" exec "$NAME" sh -c 'cat /data/records.ndjson 2>/dev/null' | grep -F "\"$drop\"" | head -1 || true)
    [ -n "$record" ] && break
    [ "$("$ENGINE" container inspect -f '{{.State.Running}}' "$NAME")" = true ] || fail "container exited"
    sleep 1
done
[ -n "$record" ] || fail "no record for $drop after ${RECORD_TIMEOUT} s; spool: $("$ENGINE" exec "$NAME" sh -c 'ls -lR /data/spool' 2>&1)"
echo "$record"
event=$(printf '%s' "$record" | sed -n 's/.*"event":"\([^"]*\)".*/\1/p')
echo "event: $event"
[ "$event" = media.stored ] || fail "record's event is '$event', expected media.stored"

step "files in /data are owned by uid 10001"
"$ENGINE" exec "$NAME" sh -c 'ls -ln /data; ls -ln /data/spool/done'
notmine=$("$ENGINE" exec "$NAME" find /data ! -uid 10001 -print) || fail "find failed"
[ -z "$notmine" ] || fail "not owned by 10001: $notmine"
[ "$("$ENGINE" exec "$NAME" id -u)" = 10001 ] || fail "the container does not run as uid 10001"

step "http: /metrics and the status page"
metrics=$(curl -fsS --max-time 5 "$BASE/metrics") || fail "/metrics not 200"
# (here-strings, not pipes into grep -q: with pipefail a writer cut off early fails the test)
grep -E '^mediaspool_(build_info|jobs_total)' <<<"$metrics" || true
grep -q '^mediaspool_jobs_total{.*outcome="stored".*} [1-9]' <<<"$metrics" || fail "/metrics shows no stored job"
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$BASE/")
echo "status page without token: $code"
[ "$code" = 401 ] || [ "$code" = 403 ] || fail "status page without token gave $code, expected 401/403"
code=$(curl -s -o "$TMP/status.html" -w '%{http_code}' --max-time 5 -H "Authorization: Bearer $TOKEN" "$BASE/")
echo "status page with token: $code ($(wc -c < "$TMP/status.html") bytes)"
[ "$code" = 200 ] || fail "status page with token gave $code"
grep -qF "$drop" "$TMP/status.html" || fail "status page does not list $drop"

# ----------------------------------------------------------------------------------------- stop
step "stop: $ENGINE stop -t 60 $NAME"
start=$(date +%s)
"$ENGINE" stop -t 60 "$NAME" >/dev/null || fail "stop failed"
echo "stopped in $(( $(date +%s) - start )) s"
exit_code=$("$ENGINE" container inspect -f '{{.State.ExitCode}}' "$NAME")
echo "exit code: $exit_code"
logs=$("$ENGINE" logs "$NAME" 2>&1)
tail -5 <<<"$logs"
[ "$exit_code" = 0 ] || fail "exit code $exit_code"
grep -q 'signal received' <<<"$logs" || fail "the logs do not show the SIGTERM being handled"
grep -q 'stopped after' <<<"$logs" || fail "the logs do not show a clean stop"
