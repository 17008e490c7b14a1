#!/usr/bin/env bash
# The main job (`make demo`): a local metaembed cluster (coordinator, 2
# shards, 1 encoder with the shipped model) ingests every Debian package
# description as text, answers a few example queries, and prints the
# efficiency table measured end to end through the cluster: for each budget
# (r_q, r_c), Recall@1 / MRR@10 on the 2,335 test synopses, median and p99
# search latency, and index bytes per document. Then, when the emoji set and
# model are there, a second cluster whose encoder runs the emoji model
# ingests all 5,223 emoji images and the 1,741 concept texts, answers a few
# text → image queries and prints the text → image and image → text tables
# measured through it. The clusters stay up.
#
#   deploy/demo.sh [--dir DIR] [--port P] [--data FILE] [--model FILE]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
bin="$here/build/release/bin"
dir=./metaembed-demo; port=7700; data=""; model="$here/models/metaembed-default.safetensors"
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "demo: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if [ -z "$data" ]; then
  data=${METAEMBED_DATA:-$here/../shared/data/debian-descriptions.jsonl.gz}
  # No frozen copy on this machine: rebuild the data set from the Debian archive.
  if [ ! -f "$data" ]; then
    data="$here/data/debian-descriptions.jsonl.gz"
    [ -f "$data" ] || "$here/deploy/fetch-debian-data.sh" "$data"
  fi
fi
[ -f "$data" ] || { echo "demo: no data at $data (pass --data FILE or set METAEMBED_DATA)" >&2; exit 1; }
[ -f "$model" ] || { echo "demo: no model at $model; train it with: $bin/metaembed train" >&2; exit 1; }

for d in "$dir/emoji" "$dir"; do
  if [ -f "$d/pids" ]; then "$here/deploy/local/stop-cluster.sh" --dir "$d" >/dev/null 2>&1 || true; fi
done
rm -rf "$dir"
"$here/deploy/local/start-cluster.sh" --shards 2 --replicas 1 --encoders 1 --model "$model" --dir "$dir" --port "$port" --bin "$bin"
export METAEMBED_ADDR="tcp://127.0.0.1:$port"
me="$bin/metaembed"

echo; echo "== collection 'debian': 128-dim vectors, 64 per document, 16 per query, f16"
"$me" collection create debian --dim 128 --max-doc-vectors 64 --max-query-vectors 16

echo; echo "== ingesting the package descriptions as text (encoder → shards)"
"$me" ingest "$data" --collection debian --stream "tcp://127.0.0.1:$((port + 90))"

echo; echo "== example queries"
for q in "text editor for programmers" "Real-time strategy game of ancient warfare" "library for parsing JSON"; do
  "$me" search --collection debian --budget 16,64 -k 3 "$q"
  echo
done

echo "== the efficiency table, measured through the cluster (test split, cascade search)"
"$me" eval --cluster --collection debian --data "$data"

emoji_data="$here/../shared/data/emoji"
emoji_model="$here/models/metaembed-emoji.safetensors"
eaddr=""
if [ -f "$emoji_data/emoji.jsonl" ] && [ -f "$emoji_model" ]; then
  eport=$((port + 300))
  echo; echo "== images: a second cluster, its encoder running $emoji_model"
  "$here/deploy/local/start-cluster.sh" --shards 2 --replicas 1 --encoders 1 --model "$emoji_model" \
    --dir "$dir/emoji" --port "$eport" --bin "$bin"
  eaddr="tcp://127.0.0.1:$eport"
  "$me" --addr "$eaddr" collection create emoji --dim 64 --max-doc-vectors 64 --max-query-vectors 16
  "$me" --addr "$eaddr" collection create emoji-text --dim 64 --max-doc-vectors 64 --max-query-vectors 16
  echo; echo "== ingesting every emoji image (decoded, embedded and stored with a thumbnail), then the concept texts"
  "$me" --addr "$eaddr" ingest "$emoji_data" --collection emoji --stream "tcp://127.0.0.1:$((eport + 90))"
  "$me" --addr "$eaddr" ingest "$emoji_data" --set-texts --collection emoji-text --stream "tcp://127.0.0.1:$((eport + 90))"
  echo; echo "== example text → image queries"
  for q in "cat face" "red heart" "pizza" "rocket"; do
    "$me" --addr "$eaddr" search --collection emoji --budget 16,64 -k 5 "$q"
    echo
  done
  echo "== the image tables, measured through the cluster (test split: concepts never trained on)"
  "$me" --addr "$eaddr" eval --cluster --data "$emoji_data"
fi

cat <<MSG

The cluster is still running:
  export METAEMBED_ADDR=$METAEMBED_ADDR
  $me search --collection debian --budget 8,16 -k 10 "your question"
  $me status
  the dashboard (ops and a search view): http://127.0.0.1:$((port + 1400))/
  the HTTP/JSON API: http://127.0.0.1:$((port + 1400))/v1/ (docs/http-api.md)
Stop it with: deploy/local/stop-cluster.sh --dir $dir
MSG
if [ -n "$eaddr" ]; then
  cat <<MSG
The emoji cluster too ($eaddr; its page with the search view: http://127.0.0.1:$((eport + 1400))/):
  $me --addr $eaddr search --collection emoji --image $emoji_data/images/google/1F431.png
Stop it with: deploy/local/stop-cluster.sh --dir $dir/emoji
MSG
fi
