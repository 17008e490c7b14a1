#!/usr/bin/env bash
# Folder layering: which folder includes headers from which, and a check
# that no two folders include each other, directly or round a circle (tsort
# finds loops). Prints the order from the bottom (include/, common/) up.
#   tests/layering.sh        exit 1 on a circle
set -euo pipefail
cd "$(dirname "$0")/.."
folders=(include proto common shard coordinator client encoder cli)
pairs=""
for d in "${folders[@]}"; do
  for dep in $(cat "$d"/*.[ch] "$d"/*.proto 2>/dev/null | sed -n 's|^#include "\([a-z_]*\)/.*|\1|p' | sort -u); do
    [ "$dep" = "$d" ] || pairs+="$dep $d"$'\n'
  done
  pairs+="$d $d"$'\n'  # every folder appears, even one with no edges
done
if ! order=$(printf '%s' "$pairs" | tsort 2>/tmp/layering.$$); then
  echo "layering: folders include each other in a circle:" >&2
  cat /tmp/layering.$$ >&2
  rm -f /tmp/layering.$$
  exit 1
fi
rm -f /tmp/layering.$$
echo "layering (each folder includes only folders before it): $(echo $order)"
