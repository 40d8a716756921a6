#!/usr/bin/env bash
# Installs the Debian packages the dev loop and the tests run for real: PostgreSQL's server
# binaries, Chromium for the browser test, wrk for the benchmark, openssl for test certificates,
# Node.js for Azurite and python3-venv for the virtualenvs.
# Only what is missing is installed, so a prepared machine pays nothing.
set -euo pipefail

missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
  || missing+=(chromium)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v node >/dev/null 2>&1 || missing+=(nodejs npm)
# Debian and Ubuntu ship venv's pip bootstrap separately from python3.
python3 -c 'import ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)

if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "Installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  # env, not a prefix assignment: sudo would drop it.
  $sudo env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Azurite (package-lock.json) runs on Node.js 20 or newer; older distributions ship an older one.
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "Node.js $(node --version) is too old for Azurite: install Node.js 20 or newer" \
       "(for example from NodeSource) and run make again." >&2
  exit 1
fi
