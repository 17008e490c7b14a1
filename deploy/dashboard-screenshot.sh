#!/usr/bin/env bash
# Renders the coordinator's dashboard in headless Chromium with live
# figures and writes a screenshot (`make dashboard-screenshot`):
# a loopback cluster (2 shards, 1 encoder) ingests 2,000 package
# descriptions, a background loop sends text searches, and Chromium loads
# http://127.0.0.1:<coordinator metrics port>/ after a few refreshes.
#
#   deploy/dashboard-screenshot.sh [--out docs/dashboard.png] [--port 18700] [--model FILE]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin="$here/build/release/bin"
out="$here/docs/dashboard.png"; port=18700; model="$here/models/metaembed-default.safetensors"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "dashboard-screenshot: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
browser=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$browser" ]; then
  echo "dashboard-screenshot: installing Debian's chromium"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get install -y -qq chromium >/dev/null
  browser=$(command -v chromium)
fi
data=${METAEMBED_DATA:-$here/../shared/data/debian-descriptions.jsonl.gz}
dir=$(mktemp -d)
loader=""
cleanup() {
  if [ -n "$loader" ]; then kill "$loader" 2>/dev/null || true; fi
  "$here/deploy/local/stop-cluster.sh" --dir "$dir/c" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
"$here/deploy/local/start-cluster.sh" --shards 2 --encoders 1 --model "$model" --dir "$dir/c" --port "$port" --bin "$bin" >/dev/null
export METAEMBED_ADDR="tcp://127.0.0.1:$port"
"$bin/metaembed" collection create debian --dim 128 >/dev/null
(zcat -f "$data" 2>/dev/null || true) | head -2000 > "$dir/corpus.jsonl" || true
"$bin/metaembed" ingest "$dir/corpus.jsonl" --collection debian --stream "tcp://127.0.0.1:$((port + 90))" >/dev/null
( while true; do
    for q in "text editor" "strategy game" "JSON parser library" "web server" "font package"; do
      "$bin/metaembed" search --collection debian --budget 8,16 -k 5 "$q" >/dev/null 2>&1 || true
    done
  done ) &
loader=$!
sleep 3
"$browser" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$dir/profile" --window-size=1000,760 \
  --timeout=9000 --screenshot="$out" "http://127.0.0.1:$((port + 1400))/" >/dev/null 2>&1
echo "dashboard screenshot: $out"
