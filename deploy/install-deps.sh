#!/usr/bin/env bash
# Installs the Debian 12 packages metaembed needs to build and test, when
# they are missing. Safe to run again: it does nothing when all are present.
#   deploy/install-deps.sh              install what is missing (needs root or sudo)
#   deploy/install-deps.sh --check-only exit 1 if something is missing
set -euo pipefail

PACKAGES=(
  build-essential pkg-config
  libzmq3-dev                              # ZeroMQ: every socket
  libprotobuf-c-dev protobuf-c-compiler    # the wire protocol
  librocksdb-dev                           # shard storage
  libopenblas-dev                          # sgemm path + reference
  libuv1-dev                               # HTTP metrics endpoint
  libhttp-parser-dev liburiparser-dev      # parsing HTTP requests and their query strings
  zlib1g-dev                               # reading the gzipped training data; checksums
  libarchive-dev                           # snapshot export/import (tar archives)
  libpng-dev libjpeg62-turbo-dev           # decoding images (PNG, JPEG) for the encoder
  procps                                   # pgrep/pkill in tests and scripts
  clang                                    # make fuzz (libFuzzer)
  prometheus                               # promtool: checks /metrics output and the scrape config
  python3-venv python3-numpy python3-pytest  # the Python client (clients/python) and its tests, offline
  python3-faiss                            # tests/bench/bench_flat.c: FAISS flat indexes as the reference
)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "${1:-}" = "--check-only" ]; then
  echo "missing packages: ${missing[*]}" >&2
  exit 1
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2; exit 1; }
  SUDO=sudo
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
