#!/usr/bin/env bash
# The daemon on the embedded defaults (local store ./media, SQLite catalog ./mediaspool.db,
# NDJSON outbox ./records.ndjson), in a fresh demo/ folder whose spool is seeded with a few
# fixtures: a voice note with its manifest, a rotated phone video, a photo, an MP3 with cover
# art, a text file and a truncated video. Runs in the foreground; Ctrl-C stops it (a second
# Ctrl-C at once), then the records are summarised. Drop more files into demo/spool/incoming/
# while it runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh
cargo build --quiet --release
bin=$(cd "${CARGO_TARGET_DIR:-target}" && pwd)/release/mediaspool
rm -rf demo && mkdir -p demo/spool/incoming
cat > demo/spool/incoming/voice_note.ogg.meta.json <<'JSON'
{"customer_id": "c-42", "chat_id": "wa:+34600000000", "message_id": "wamid.demo1",
 "channel": "whatsapp", "received_at": "2026-11-28T10:00:00Z", "tags": ["product-issue"], "consent": true}
JSON
for f in voice_note.ogg rot90_h264.mp4 exif_rotated.jpg cover_art.mp3 not_media.txt truncated.mp4; do
  cp "fixtures/$f" "demo/spool/incoming/.$f.part" && mv "demo/spool/incoming/.$f.part" "demo/spool/incoming/$f"
done
cd demo
echo "mediaspool watch in $PWD — Ctrl-C to stop"
"$bin" watch || true
echo
echo "records (demo/records.ndjson):"
python3 -c '
import json
for line in open("records.ndjson"):
    r = json.loads(line); m = r["media"] or {}
    what = r["error"]["code"] if r.get("error") else "%s %s %s ms %s bytes" % (m.get("kind"), m.get("mime"), m.get("duration_ms"), m.get("bytes"))
    print("  %-20s %-16s %s" % (r["source"]["file_name"], r["event"], what))
'
echo "outputs under demo/media/, originals in demo/spool/done/ and demo/spool/failed/; try: $bin query --customer c-42"
