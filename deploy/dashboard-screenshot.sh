#!/usr/bin/env bash
# Renders the coordinator's dashboard in headless Chromium with live
# figures and writes a screenshot (`make dashboard-screenshot`; needs npm
# once, for puppeteer-core):
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
source "$here/deploy/lib/browser.sh"
browser=$(find_browser)
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
    for b in 1,1 2,4 4,8 8,16 16,64; do
      for q in "text editor" "strategy game" "JSON parser library" "web server" "font package"; do
        "$bin/metaembed" search --collection debian --budget "$b" -k 5 "$q" >/dev/null 2>&1 || true
      done
    done
  done ) &
loader=$!
sleep 8
# Drive Chromium over the DevTools protocol (puppeteer-core from npm, kept in
# build/node-tools; it uses Debian's chromium, downloads no browser) so the
# page runs in real time for a while: its rates are per real second, and
# the charts need a few refreshes.
NODE_PATH="$(ensure_puppeteer "$here/build/node-tools")" BROWSER="$browser" URL="http://127.0.0.1:$((port + 1400))/" OUT="$out" \
  PROFILE="$dir/profile" node - <<'JS'
const puppeteer = require('puppeteer-core');
(async () => {
  const b = await puppeteer.launch({ executablePath: process.env.BROWSER, headless: 'new',
    userDataDir: process.env.PROFILE,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync'] });
  const p = await b.newPage();
  await p.setViewport({ width: 1000, height: 700 });
  await p.goto(process.env.URL);
  await new Promise(r => setTimeout(r, 24000));  /* 12 refreshes */
  await p.screenshot({ path: process.env.OUT });
  await b.close();
})().catch(e => { console.error(e); process.exit(1); });
JS
echo "dashboard screenshot: $out"
