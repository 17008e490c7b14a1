#!/usr/bin/env bash
# Renders the coordinator page's search view in headless Chromium and
# writes a screenshot (`make search-screenshot`; needs npm once, for
# puppeteer-core): a loopback cluster (2 shards, 1 encoder running the emoji
# model) ingests the emoji images, then the page runs a text query and an
# image upload and the hits are shot as a grid of thumbnails.
#
#   deploy/search-screenshot.sh [--out docs/search.png] [--port 18800] [--query "cat face"] [--images N]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin="$here/build/release/bin"
out="$here/docs/search.png"; port=18800; query="cat face"; images=600
model="$here/models/metaembed-emoji.safetensors"
data="$here/../shared/data/emoji"
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --query) query=$2; shift 2 ;;
    --images) images=$2; shift 2 ;;
    -h|--help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "search-screenshot: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[ -f "$data/emoji.jsonl" ] || { echo "search-screenshot: no emoji data at $data" >&2; exit 1; }
source "$here/deploy/lib/browser.sh"
browser=$(find_browser)
dir=$(mktemp -d)
cleanup() {
  "$here/deploy/local/stop-cluster.sh" --dir "$dir/c" >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT
"$here/deploy/local/start-cluster.sh" --shards 2 --encoders 1 --model "$model" --dir "$dir/c" --port "$port" --bin "$bin" >/dev/null
export METAEMBED_ADDR="tcp://127.0.0.1:$port"
"$bin/metaembed" collection create emoji --dim 64 --max-doc-vectors 64 --max-query-vectors 16 >/dev/null
# One line per image: {"id": "HEX-style", "image": path, "label": ...}.
node - "$data" "$images" > "$dir/items.jsonl" <<'JS'
const fs = require('fs'), path = require('path');
const [data, max] = [process.argv[2], +process.argv[3]];
let n = 0;
for (const line of fs.readFileSync(path.join(data, 'emoji.jsonl'), 'utf8').split('\n')) {
  if (!line) continue;
  const c = JSON.parse(line);
  for (const [style, rel] of Object.entries(c.images)) {
    if (n++ >= max) process.exit(0);
    console.log(JSON.stringify({ id: `${c.id}-${style}`, image: path.resolve(data, rel), label: c.label }));
  }
}
JS
"$bin/metaembed" ingest "$dir/items.jsonl" --collection emoji --stream "tcp://127.0.0.1:$((port + 90))" >/dev/null
query_image=$(node -e 'const l=require("fs").readFileSync(process.argv[1],"utf8").split("\n")[3];console.log(JSON.parse(l).image)' "$dir/items.jsonl")
NODE_PATH="$(ensure_puppeteer "$here/build/node-tools")" BROWSER="$browser" URL="http://127.0.0.1:$((port + 1400))/" OUT="$out" \
  QUERY="$query" IMAGE="$query_image" PROFILE="$dir/profile" node - <<'JS'
const puppeteer = require('puppeteer-core');
(async () => {
  const b = await puppeteer.launch({ executablePath: process.env.BROWSER, headless: 'new',
    userDataDir: process.env.PROFILE,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync'] });
  const p = await b.newPage();
  await p.setViewport({ width: 1000, height: 760 });
  await p.goto(process.env.URL);
  await p.waitForFunction(() => document.querySelectorAll('#coll option').length > 0, { timeout: 20000 });
  /* An image upload first (its hits must render), then the text query. */
  const file = await p.$('#img');
  await file.uploadFile(process.env.IMAGE);
  await p.click('#sf button');
  await p.waitForFunction(() => document.querySelectorAll('#hits .hit img').length > 0, { timeout: 20000 });
  await p.evaluate(() => { document.getElementById('img').value = ''; });
  await p.type('#q', process.env.QUERY);
  await p.click('#sf button');
  await p.waitForFunction(q => document.getElementById('smeta').textContent.includes('hits of') &&
                              document.querySelectorAll('#hits .hit img').length >= 10, { timeout: 20000 }, process.env.QUERY);
  const shown = await p.evaluate(() => [...document.querySelectorAll('#hits .hit img')].filter(i => i.naturalWidth > 0).length);
  await p.screenshot({ path: process.env.OUT });
  console.log(`search-screenshot: ${shown} thumbnails rendered`);
  await b.close();
  if (shown < 10) process.exit(1);
})().catch(e => { console.error(e); process.exit(1); });
JS
echo "search screenshot: $out"
