#!/usr/bin/env bash
# Parses every file under deploy/: shell scripts (bash -n), YAML (js-yaml,
# installed from npm into build/ on first use), JSON, and checks each
# Kubernetes object names its apiVersion, kind and metadata.name; lints
# docs/openapi.json with @redocly/cli (npm, into build/ as well).
#   tests/deploy-lint.sh      (also: make deploy-lint)
set -euo pipefail
cd "$(dirname "$0")/.."
for f in deploy/*.sh deploy/local/*.sh; do bash -n "$f"; done
tools=build/node-tools
if [ ! -d "$tools/node_modules/js-yaml" ]; then
  mkdir -p "$tools"
  (cd "$tools" && npm install --silent --no-audit --no-fund js-yaml@4 >/dev/null)
fi
NODE_PATH="$tools/node_modules" node - <<'JS'
const fs = require('fs'), yaml = require('js-yaml');
let n = 0;
for (const f of ['deploy/kubernetes/metaembed.yaml']) {
  for (const doc of yaml.loadAll(fs.readFileSync(f, 'utf8'))) {
    if (!doc) continue;
    if (!doc.apiVersion || !doc.kind || !doc.metadata || !doc.metadata.name) throw new Error(f + ': object without apiVersion/kind/metadata.name');
    n++;
  }
}
yaml.load(fs.readFileSync('deploy/prometheus/prometheus.yml', 'utf8'));
yaml.load(fs.readFileSync('deploy/prometheus/prometheus-kubernetes.yml', 'utf8'));
const g = JSON.parse(fs.readFileSync('deploy/grafana/metaembed-dashboard.json', 'utf8'));
if (!Array.isArray(g.panels) || !g.panels.length) throw new Error('grafana: no panels');
console.log(`deploy-lint: ${n} Kubernetes objects, prometheus.yml and ${g.panels.length} Grafana panels parse`);
JS
# Prometheus's own checker where Debian's prometheus package is installed.
if command -v promtool >/dev/null; then
  promtool check config deploy/prometheus/prometheus.yml >/dev/null
  echo "deploy-lint: promtool check config: deploy/prometheus/prometheus.yml OK"
else
  echo "deploy-lint: promtool not installed (Debian's prometheus package): scrape config only parsed"
fi
# The HTTP API's OpenAPI document (docs/openapi.json), by Redocly's linter
# (its recommended rules, less the license ones: the project names none).
if [ ! -x "$tools/node_modules/.bin/redocly" ]; then
  (cd "$tools" && npm install --silent --no-audit --no-fund @redocly/cli@2.77.0 >/dev/null)
fi
"$tools/node_modules/.bin/redocly" lint --skip-rule info-license --skip-rule info-license-strict docs/openapi.json
