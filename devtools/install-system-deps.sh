#!/usr/bin/env bash
# Installs the Debian packages the dev loop and the tests run for real: the psql client (the
# database-role step and its test), Chromium for the browser test, wrk for the benchmark,
# openssl for test certificates, Node.js for Azurite and PostgreSQL 16 (devtools/package.json),
# and python3-venv for the virtualenvs. Only what is missing is installed, so a prepared machine
# pays nothing.
set -euo pipefail

missing=()
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
# npm's PostgreSQL 16 exists for x86-64 only; elsewhere Debian's server is the fallback.
if [ "$(uname -m)" != x86_64 ]; then
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
fi
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

# PostgreSQL refuses to run as root, so root's `make dev` and tests run it as this account
# (devtools/services.py). Debian's server package would create the same one.
if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
  echo "Creating the unprivileged system account 'postgres' for the local PostgreSQL"
  useradd --system --user-group --home-dir /nonexistent --no-create-home \
    --shell /usr/sbin/nologin --comment "PostgreSQL for restaurant-review devtools" postgres
fi

# Azurite (devtools/package-lock.json) needs Node.js 20 or newer; older distributions ship older.
node_major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$node_major" -lt 20 ]; then
  echo "Node.js $(node --version) is too old for Azurite: install Node.js 20 or newer" \
       "(for example from NodeSource) and run make again." >&2
  exit 1
fi
