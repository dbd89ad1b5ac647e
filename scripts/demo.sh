#!/usr/bin/env bash
# A demo on the embedded defaults: builds mediaspool, copies the fixtures into a fresh
# demo/ folder and runs the pipeline on them. Outputs land in demo/media/, records in
# demo/records.ndjson.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --quiet --release
bin=$PWD/target/release/mediaspool
rm -rf demo && mkdir -p demo/inbox
cp fixtures/voice_note.ogg fixtures/rot90_h264.mp4 fixtures/exif_rotated.jpg fixtures/cover_art.mp3 \
   fixtures/not_media.txt fixtures/truncated.mp4 demo/inbox/
cd demo
status=0
"$bin" process inbox/* || status=$?
echo
echo "records (demo/records.ndjson):"
python3 -c '
import json
for line in open("records.ndjson"):
    r = json.loads(line); m = r["media"] or {}
    what = r["error"]["code"] if r.get("error") else "%s %s %s ms %s bytes" % (m.get("kind"), m.get("mime"), m.get("duration_ms"), m.get("bytes"))
    print("  %-20s %-15s %s" % (r["source"]["file_name"], r["event"], what))
'
echo "outputs under demo/media/ (exit status $status: 1 means some inputs were rejected, as the demo intends)"
