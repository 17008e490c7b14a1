# Shared by the screenshot scripts (source it): Debian's Chromium, driven
# over the DevTools protocol by puppeteer-core from npm (kept in
# build/node-tools; it downloads no browser).
#   browser=$(find_browser)      the chromium binary, installed when missing
#   tools=$(ensure_puppeteer DIR) NODE_PATH for puppeteer-core under DIR
find_browser() {
  local b
  b=$(command -v chromium || command -v chromium-browser || true)
  if [ -z "$b" ]; then
    echo "installing Debian's chromium" >&2
    local SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get install -y -qq chromium >/dev/null
    b=$(command -v chromium)
  fi
  echo "$b"
}

ensure_puppeteer() {
  local tools=$1
  if [ ! -d "$tools/node_modules/puppeteer-core" ]; then
    mkdir -p "$tools"
    (cd "$tools" && npm install --silent --no-audit --no-fund puppeteer-core@21 >/dev/null)
  fi
  echo "$tools/node_modules"
}
