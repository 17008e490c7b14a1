#!/usr/bin/env bash
# Starts a local metaembed cluster on loopback: S shard groups with R
# replicas each, and a coordinator in front; waits until every process
# answers, then prints how to use and stop it.
#
#   deploy/local/start-cluster.sh [--shards S] [--replicas R] [--standby N] [--encoders E]
#                                 [--model FILE] [--dir DIR] [--port P] [--bin DIR]
#                                 [-- extra coordinator flags]
#
# --standby N adds N more shard groups, standby in the map (empty until
# 'metaembed reshard --groups S+N' moves documents to them).
# Defaults: 2 shards, 1 replica, no standby, no encoders, ./metaembed-cluster,
# coordinator on 7700, shards on 7701.., encoders on 7800.. pulling the text
# ingest stream tcp://127.0.0.1:P+90 (what 'metaembed ingest corpus.jsonl'
# binds by default for P=7700), binaries from build/release/bin. Stop it with
# deploy/local/stop-cluster.sh --dir DIR.
set -euo pipefail

shards=2; replicas=1; standby=0; encoders=0; dir=./metaembed-cluster; port=7700
here=$(cd "$(dirname "$0")/../.." && pwd)
bin="$here/build/release/bin"
model="$here/models/metaembed-default.safetensors"
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --shards) shards=$2; shift 2 ;;
    --replicas) replicas=$2; shift 2 ;;
    --standby) standby=$2; shift 2 ;;
    --encoders) encoders=$2; shift 2 ;;
    --model) model=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "start-cluster: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for b in metaembed-shard metaembed-coordinator metaembed-encoder; do
  [ -x "$bin/$b" ] || { echo "start-cluster: $bin/$b not found; run 'make' first" >&2; exit 1; }
done
if [ -f "$dir/pids" ] && xargs -r kill -0 < "$dir/pids" 2>/dev/null; then
  echo "start-cluster: a cluster is already running from $dir (stop it with deploy/local/stop-cluster.sh --dir $dir)" >&2
  exit 1
fi
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
: > "$dir/pids"
map="$dir/cluster.conf"
echo "# written by deploy/local/start-cluster.sh" > "$map"

wait_port() {  # a port accepts TCP connections (ZeroMQ listens on it)
  for _ in $(seq 1 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "start-cluster: nothing listening on 127.0.0.1:$1 after 10 s; see $dir/*.log" >&2
  return 1
}

p=$((port + 1))
for ((s = 0; s < shards + standby; s++)); do
  line="group g$s"
  [ "$s" -ge "$shards" ] && line="$line standby"
  for ((r = 0; r < replicas; r++)); do
    name="g$s-r$r"
    "$bin/metaembed-shard" --listen "tcp://127.0.0.1:$p" --data-dir "$dir/$name" \
      --metrics-addr "127.0.0.1:$((p + 1400))" >> "$dir/$name.log" 2>&1 &
    echo $! >> "$dir/pids"
    line="$line tcp://127.0.0.1:$p"
    wait_port "$p"
    p=$((p + 1))
  done
  echo "$line" >> "$map"
done
stream="tcp://127.0.0.1:$((port + 90))"
if [ "$encoders" -gt 0 ]; then
  [ -f "$model" ] || { echo "start-cluster: model $model not found (train one: metaembed train)" >&2; exit 1; }
  line="encoders"
  for ((e = 0; e < encoders; e++)); do
    ep=$((port + 100 + e))
    "$bin/metaembed-encoder" --listen "tcp://127.0.0.1:$ep" --model "$model" --ingest-from "$stream" \
      --coordinator "tcp://127.0.0.1:$port" --metrics-addr "127.0.0.1:$((ep + 1400))" >> "$dir/encoder$e.log" 2>&1 &
    echo $! >> "$dir/pids"
    line="$line tcp://127.0.0.1:$ep"
    wait_port "$ep"
  done
  echo "$line" >> "$map"
fi
"$bin/metaembed-coordinator" --listen "tcp://127.0.0.1:$port" --cluster "$map" \
  --metrics-addr "127.0.0.1:$((port + 1400))" "${extra[@]}" >> "$dir/coordinator.log" 2>&1 &
echo $! >> "$dir/pids"
wait_port "$port"
cat <<MSG
metaembed cluster up: coordinator tcp://127.0.0.1:$port, $shards shard group(s) (+$standby standby) x $replicas replica(s), $encoders encoder(s)
  data and logs:  $dir
  cluster map:    $map
  dashboard:      http://127.0.0.1:$((port + 1400))/ (the ops page and a search view, in a browser)
  HTTP API:       http://127.0.0.1:$((port + 1400))/v1/ (curl, the Python client; OpenAPI at /openapi.json)
  metrics:        http://127.0.0.1:$((port + 1400))/metrics (coordinator; each process: its port + 1400)
  try:            export METAEMBED_ADDR=tcp://127.0.0.1:$port; $bin/metaembed status
  new collection: $bin/metaembed collection create NAME --for-model   (D, R_c, R_q of the encoders' model)
  text ingest:    $bin/metaembed ingest corpus.jsonl --collection NAME --stream $stream
  stop:           deploy/local/stop-cluster.sh --dir $dir
MSG
