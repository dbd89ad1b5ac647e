#!/usr/bin/env bash
# Runs every fuzz target in fuzz/ for SECONDS each (default 60), one after another, niced.
# Needs a nightly toolchain (rustup); installs cargo-fuzz when it is missing. Seeds the media
# targets from fixtures/ and, when present, the shared corpus (MEDIASPOOL_CORPUS, default
# ../shared/corpus); findings land in fuzz/artifacts/TARGET/. Exits non-zero if any target
# found a crash, a hang or runaway memory.
#
#   scripts/fuzz.sh            # a minute each
#   scripts/fuzz.sh 3600       # an hour each
#   FUZZ_TARGETS="manifest record" scripts/fuzz.sh 600
set -euo pipefail

seconds=${1:-60}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root/fuzz"
corpus_src=${MEDIASPOOL_CORPUS:-$root/../shared/corpus}
sanitizer=${FUZZ_SANITIZER:-none}

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

targets=${FUZZ_TARGETS:-$(cargo +nightly fuzz list)}
nice -n 19 cargo +nightly fuzz build --sanitizer "$sanitizer"

# Seeds: inputs of the kind each target reads, at most 1 MiB each (longer media is cut by
# -max_len anyway).
seed() {
    local target=$1
    shift
    mkdir -p "corpus/$target"
    for f in "$@"; do
        [ -f "$f" ] && [ "$(stat -c %s "$f")" -le 1048576 ] && cp -n "$f" "corpus/$target/" || true
    done
}
for target in manifest config profile record; do
    seed "$target" "seeds/$target"/*
done
seed profile "$root"/profiles/*.toml
media=("$root"/fixtures/* "$root"/fuzz/regressions/*/*)  # past findings, kept as seeds
[ -d "$corpus_src" ] && media+=("$corpus_src"/*/*)  # audio/, video/, broken/, other/
seed probe "${media[@]}"
seed worker_job "${media[@]}"

failed=()
for target in $targets; do
    case $target in
        probe | worker_job) limits=(-max_len=262144 -timeout=120 -rss_limit_mb=2048) ;;
        *) limits=(-max_len=65536 -timeout=10 -rss_limit_mb=1024) ;;
    esac
    echo "fuzz: $target for ${seconds}s"
    mkdir -p "artifacts/$target"
    if ! nice -n 19 cargo +nightly fuzz run --sanitizer "$sanitizer" "$target" "corpus/$target" -- \
        -max_total_time="$seconds" "${limits[@]}" -print_final_stats=1 \
        -artifact_prefix="artifacts/$target/"; then
        failed+=("$target")
    fi
done
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: findings in ${failed[*]} (see fuzz/artifacts/)" >&2
    exit 1
fi
echo "fuzz: no findings"
