#!/usr/bin/env bash
# One entry point for a fresh machine (Python 3.11, Node 20):
#   bash run.sh demo [demo flags]   set up, then run the digits demo
#   bash run.sh test [pytest args]  set up, then run every test (UI bundle check, vitest, pytest)
# Each command creates or refreshes its own virtual environment (.venv) and node_modules.
set -euo pipefail
cd "$(dirname "$0")"

PYTHON="${PYTHON:-python3}"
VENV=.venv

say() { printf '\n== %s\n' "$*"; }

setup_python() {
  local extras="$1" stamp
  stamp="$VENV/.bcml-installed-$extras-$(cat pyproject.toml setup.py constraints.txt | sha256sum | cut -c1-16)"
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating the virtual environment $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  if [ ! -e "$stamp" ]; then
    say "installing backwardcompatibilityml[$extras] (torch pinned by constraints.txt)"
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[$extras]"
    rm -f "$VENV"/.bcml-installed-"$extras"-*
    touch "$stamp"
  fi
}

setup_node() {
  local stamp="node_modules/.bcml-$(sha256sum package-lock.json | cut -c1-16)"
  if [ ! -e "$stamp" ]; then
    say "installing the UI's node packages (npm ci)"
    npm ci --no-audit --no-fund --loglevel=error
    touch "$stamp"
  fi
}

setup_chromium() {
  if ! command -v chromium >/dev/null 2>&1; then
    say "installing Debian's chromium for the browser tests"
    if [ "$(id -u)" = 0 ]; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
      sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    fi
  fi
}

command="${1:-}"
[ $# -gt 0 ] && shift
case "$command" in
  demo)
    setup_python demo
    exec "$VENV/bin/python" -m backwardcompatibilityml demo "$@"
    ;;
  test)
    start=$(date +%s)
    setup_python dev,mlflow
    setup_node
    setup_chromium
    say "checking that the committed UI bundle is built from widget-ui/"
    npm run --silent check-bundle
    say "UI tests (vitest)"
    npm test --silent
    say "Python tests (pytest)"
    "$VENV/bin/python" -m pytest "$@"
    say "all tests passed in $(( $(date +%s) - start )) s"
    ;;
  *)
    echo "usage: bash run.sh demo [demo flags: --folder DIR --epochs N --stepsize S --executor E --start" >&2
    echo "                             --port N --host H --allowed-host NAME --no-browser; see bcml demo --help]" >&2
    echo "       bash run.sh test [pytest arguments]" >&2
    exit 2
    ;;
esac
