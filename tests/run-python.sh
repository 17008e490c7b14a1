#!/usr/bin/env bash
# The Python client's suite (clients/python/tests) against daemons built in
# $1: installs the package offline into a venv under build/ (Debian's numpy
# and pytest through --system-site-packages; PyPI is never asked), runs
# pytest, and ends with one line "python: N passed, N failed".
#   tests/run-python.sh BIN_DIR [pytest args...]
set -u
bin=$(cd "${1:?usage: run-python.sh BIN_DIR [pytest args...]}" && pwd)
shift
cd "$(dirname "$0")/.."
venv=build/pyvenv
py=/usr/bin/python3
[ -x "$py" ] || py=python3
if [ ! -x "$venv/bin/python" ]; then
  "$py" -m venv --system-site-packages "$venv" || { echo "python: 0 passed, 1 failed (cannot make $venv: install python3-venv)"; exit 1; }
fi
# The package is built in a copy, so no build/ or egg-info lands in clients/.
src=$(mktemp -d)
cp -r clients/python/. "$src"
if ! "$venv/bin/pip" install -q --no-build-isolation --no-index --no-deps --force-reinstall "$src"; then
  rm -rf "$src"
  echo "python: 0 passed, 1 failed (pip install clients/python failed)"
  exit 1
fi
rm -rf "$src"
report=$(mktemp)
# From /tmp, so `import metaembed` is the installed package, not the source.
(cd /tmp && ME_BIN="$bin" "$OLDPWD/$venv/bin/python" -m pytest -q -p no:cacheprovider --junitxml="$report" \
   "$OLDPWD/clients/python/tests" "$@")
code=$?
"$venv/bin/python" - "$report" "$code" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    root = ET.parse(sys.argv[1]).getroot()
    s = root if root.tag == "testsuite" else root.find("testsuite")
    total, bad = int(s.get("tests")), int(s.get("failures")) + int(s.get("errors"))
    skipped = int(s.get("skipped", 0))
    print(f"python: {total - bad - skipped} passed, {bad} failed")
except Exception as e:
    print(f"python: 0 passed, 1 failed (no pytest report: {e}; exit {sys.argv[2]})")
PY
rm -f "$report"
exit $code
