#!/usr/bin/env bash
# Sets up .venv with everything the tests need, then runs the whole suite.
# Extra arguments go to pytest (e.g. ./scripts/test.sh tests/unit -x).
# The cluster tests (tests/cluster) need Debian's etcd-server; the dashboard's browser
# tests (tests/integration/test_dashboard_browser.py) drive Debian's headless chromium
# and skip where it cannot be installed. Missing ones are installed here (root or sudo,
# one package index update).
need=""
command -v etcd >/dev/null 2>&1 || need="etcd-server"
command -v chromium-headless-shell >/dev/null 2>&1 || command -v chromium >/dev/null 2>&1 \
    || need="$need chromium-headless-shell"
if [ -n "$need" ]; then
    SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
    $SUDO apt-get update -qq || true
    case "$need" in *etcd-server*) $SUDO apt-get install -y -qq etcd-server >/dev/null ;; esac
    case "$need" in *chromium*)
        $SUDO apt-get install -y -qq chromium-headless-shell >/dev/null \
            || echo "chromium-headless-shell not installed: the dashboard browser tests skip" >&2 ;;
    esac
fi
. "$(dirname "$0")/_venv.sh" '[dev]'
exec .venv/bin/python -m pytest "$@"
