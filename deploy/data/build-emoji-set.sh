#!/usr/bin/env bash
# Rebuilds an image-text set equivalent to ../shared/data/emoji from the
# four npm packages it was made from, for users outside this environment:
#   emojibase-data 17.0.0 (CLDR names, keywords, groups; MIT)
#   emoji-datasource-google 16.0.0 (Noto Emoji 64 px PNGs; Apache 2.0)
#   emoji-datasource-twitter 16.0.0 (Twemoji 64 px PNGs; CC-BY 4.0)
#   openmoji 17.0.0 (SVGs rendered at 64 x 64 by rsvg-convert; CC BY-SA 4.0)
# Only concepts drawn in all three styles are kept, skin-tone variants are
# left out, and the split is by concept (a stable hash of its code point
# sequence: about 78 % train, 5 % dev, 17 % test). Published figures use the
# frozen copy; this one's split differs, so its figures do not compare.
# Keep the attribution above wherever the images or a model trained on
# them ship.
#
#   deploy/data/build-emoji-set.sh OUT_DIR     (needs npm, node, rsvg-convert)
set -euo pipefail
out=${1:-}
if [ -z "$out" ] || [ "$out" = "-h" ] || [ "$out" = "--help" ]; then
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
  [ -n "$out" ] && exit 0 || exit 2
fi
for tool in npm node tar; do
  command -v "$tool" >/dev/null || { echo "build-emoji-set: needs $tool" >&2; exit 1; }
done
if ! command -v rsvg-convert >/dev/null; then
  echo "build-emoji-set: installing librsvg2-bin (rsvg-convert) for the OpenMoji SVGs"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get install -y -qq --no-install-recommends librsvg2-bin >/dev/null
fi
mkdir -p "$out/images/google" "$out/images/twitter" "$out/images/openmoji"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
echo "build-emoji-set: fetching the packages"
npm pack --silent emojibase-data@17.0.0 emoji-datasource-google@16.0.0 emoji-datasource-twitter@16.0.0 \
  openmoji@17.0.0 >/dev/null
for p in emojibase-data-17.0.0 emoji-datasource-google-16.0.0 emoji-datasource-twitter-16.0.0 openmoji-17.0.0; do
  mkdir -p "$p" && tar xzf "$p.tgz" -C "$p"
done

# The concepts and the files each style has for them (one line each:
# HEX<TAB>google png<TAB>twitter png<TAB>openmoji svg), and emoji.jsonl.
node - "$work" "$out" <<'EOF'
const fs = require('fs'), path = require('path');
const [work, out] = process.argv.slice(2);
const base = path.join(work, 'emojibase-data-17.0.0/package');
const data = JSON.parse(fs.readFileSync(path.join(base, 'en/data.json'), 'utf8'));
const meta = JSON.parse(fs.readFileSync(path.join(base, 'meta/groups.json'), 'utf8'));
const png = (pkg, style, hex) => {
  // emoji-datasource names files by lower-case code points; variation
  // selectors (FE0F) may or may not be part of the name.
  const dir = path.join(work, pkg, 'package/img', style, '64');
  const lo = hex.toLowerCase(), bare = lo.replace(/-fe0f/g, '');
  for (const h of [lo, bare, bare + '-fe0f', bare.replace(/^([0-9a-f]+)/, '$1-fe0f')]) {
    const f = path.join(dir, h + '.png');
    if (fs.existsSync(f)) return f;
  }
  return null;
};
const svg = hex => {
  const dir = path.join(work, 'openmoji-17.0.0/package/color/svg');
  const bare = hex.replace(/-FE0F/g, '');
  for (const h of [hex, bare, bare + '-FE0F', bare.replace(/^([0-9A-F]+)/, '$1-FE0F')]) {
    const f = path.join(dir, h + '.svg');
    if (fs.existsSync(f)) return f;
  }
  return null;
};
// FNV-1a over the code points: a split that never changes between runs.
const split = hex => {
  let h = 0x811c9dc5;
  for (const ch of hex) { h ^= ch.charCodeAt(0); h = Math.imul(h, 0x01000193) >>> 0; }
  const u = (h % 1000) / 1000;
  return u < 0.78 ? 'train' : u < 0.83 ? 'dev' : 'test';
};
const lines = [], files = [];
for (const e of data) {
  if (e.group === undefined || e.subgroup === undefined || e.group === 2) continue;  // 2: components (skin tones)
  const g = png('emoji-datasource-google-16.0.0', 'google', e.hexcode);
  const t = png('emoji-datasource-twitter-16.0.0', 'twitter', e.hexcode);
  const o = svg(e.hexcode);
  if (!g || !t || !o) continue;
  const id = e.hexcode;
  lines.push(JSON.stringify({
    id, split: split(id), label: e.label, tags: e.tags || [],
    group: meta.groups[e.group], subgroup: meta.subgroups[e.subgroup],
    images: { google: `images/google/${id}.png`, twitter: `images/twitter/${id}.png`,
              openmoji: `images/openmoji/${id}.png` },
  }));
  files.push([id, g, t, o].join('\t'));
}
fs.writeFileSync(path.join(out, 'emoji.jsonl'), lines.join('\n') + '\n');
fs.writeFileSync(path.join(work, 'files.tsv'), files.join('\n') + '\n');
console.log(`build-emoji-set: ${lines.length} concepts in all three styles`);
EOF

echo "build-emoji-set: copying PNGs and rendering the OpenMoji SVGs at 64 x 64"
n=0
while IFS=$'\t' read -r id g t o; do
  cp "$g" "$out/images/google/$id.png"
  cp "$t" "$out/images/twitter/$id.png"
  rsvg-convert -w 64 -h 64 "$o" -o "$out/images/openmoji/$id.png"
  n=$((n + 1))
  if [ -t 1 ] && [ $((n % 100)) -eq 0 ]; then printf '\r  %d concepts' "$n"; fi
done < "$work/files.tsv"
[ -t 1 ] && printf '\r'
cat > "$out/README.md" <<'EOF'
Rebuilt by metaembed's deploy/data/build-emoji-set.sh from emojibase-data
17.0.0 (MIT, data from Unicode CLDR), emoji-datasource-google 16.0.0 (Noto
Emoji, Apache License 2.0, Google), emoji-datasource-twitter 16.0.0
(Twemoji, CC-BY 4.0, Twitter, Inc. and contributors) and openmoji 17.0.0
(OpenMoji, CC BY-SA 4.0, HfG Schwäbisch Gmünd and contributors). The split
is a stable hash of each concept's code points, not the frozen copy's.
EOF
echo "build-emoji-set: wrote $n concepts, $((3 * n)) images to $out"
