#!/usr/bin/env bash
# Rebuilds the Debian package descriptions data set from the archive, for a
# machine without ../shared/data (shared/data/README.md describes it). The
# archive moves with point releases, so the result can differ slightly from
# the frozen copy the published figures use.
#
#   deploy/fetch-debian-data.sh [OUT.jsonl.gz]     (default: data/debian-descriptions.jsonl.gz)
#
# Records: {"id", "split", "query" (the synopsis), "text" (the long
# description, paragraphs joined by a blank line)}; only descriptions that
# are unique in the archive are kept; split by a stable hash of the id:
# ~4% test, ~2% dev, the rest train.
set -euo pipefail
out=${1:-data/debian-descriptions.jsonl.gz}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/al/partial" "$work/ac/archives/partial" "$(dirname "$out")"
apt-get -qq -o Dir::State::Lists="$work/al" -o Dir::Cache="$work/ac" -o Acquire::Languages=en update
src=$(ls "$work"/al/*_dists_bookworm_main_i18n_Translation-en* 2>/dev/null | head -1)
[ -n "$src" ] || { echo "fetch-debian-data: no Translation-en index was downloaded" >&2; exit 1; }
/usr/lib/apt/apt-helper cat-file "$src" > "$work/Translation-en"
awk '
function flush() {
  if (pkg != "" && syn != "") { n++; P[n] = pkg; S[n] = syn; T[n] = text; C[text]++ }
  pkg = ""; syn = ""; text = ""; para = ""
}
function esc(s) { gsub(/\\/, "\\\\\\\\", s); gsub(/"/, "\\\"", s); gsub(/\t/, "\\t", s); gsub(/\n/, "\\n", s); return s }
/^Package: / { flush(); pkg = substr($0, 10); next }
/^Description-en: / { syn = substr($0, 17); next }
/^ \.$/ { text = text "\n\n"; next }
/^ / { line = substr($0, 2); if (text != "" && substr(text, length(text)) != "\n") text = text " "; text = text line; next }
/^$/ { flush() }
END {
  flush()
  for (i = 1; i <= n; i++) {
    if (C[T[i]] != 1 || T[i] == "") continue
    h = 0; for (k = 1; k <= length(P[i]); k++) h = (h * 31 + index("abcdefghijklmnopqrstuvwxyz0123456789.+-", substr(P[i], k, 1))) % 1000
    split_ = h < 40 ? "test" : h < 60 ? "dev" : "train"
    printf "{\"id\": \"%s\", \"split\": \"%s\", \"query\": \"%s\", \"text\": \"%s\"}\n", esc(P[i]), split_, esc(S[i]), esc(T[i])
  }
}' "$work/Translation-en" | gzip -9 > "$out"
echo "wrote $out: $(zcat "$out" | wc -l) records"
