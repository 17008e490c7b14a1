#!/usr/bin/env bash
# Stops a cluster started by start-cluster.sh: SIGTERM to every process
# (shards flush and close RocksDB), waiting up to 30 s before SIGKILL.
#   deploy/local/stop-cluster.sh [--dir DIR]   (default ./metaembed-cluster)
set -uo pipefail
dir=./metaembed-cluster
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift 2 ;;
    -h|--help) sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "stop-cluster: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[ -f "$dir/pids" ] || { echo "stop-cluster: no cluster in $dir (no pids file)" >&2; exit 1; }
pids=$(cat "$dir/pids")
kill -TERM $pids 2>/dev/null
for _ in $(seq 1 300); do
  alive=0
  for pid in $pids; do kill -0 "$pid" 2>/dev/null && alive=1; done
  [ $alive -eq 0 ] && break
  sleep 0.1
done
for pid in $pids; do kill -0 "$pid" 2>/dev/null && { echo "stop-cluster: $pid did not stop, killing" >&2; kill -KILL "$pid"; }; done
rm -f "$dir/pids"
echo "metaembed cluster in $dir stopped"
