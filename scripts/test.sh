#!/usr/bin/env bash
# Sets up .venv with everything the tests need, then runs the whole suite.
# Extra arguments go to pytest (e.g. ./scripts/test.sh tests/unit -x).
# The cluster tests (tests/cluster) start real etcd servers: Debian's etcd-server is
# installed here when `etcd` is missing (needs root or sudo, and the package index).
if ! command -v etcd >/dev/null 2>&1; then
    SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq etcd-server >/dev/null
fi
# The dashboard's browser tests (tests/integration/test_dashboard_browser.py) drive
# Debian's headless chromium; they are skipped where it cannot be installed.
if ! command -v chromium-headless-shell >/dev/null 2>&1 && ! command -v chromium >/dev/null 2>&1; then
    SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
    { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium-headless-shell >/dev/null; } \
        || echo "chromium-headless-shell not installed: the dashboard browser tests skip" >&2
fi
. "$(dirname "$0")/_venv.sh" '[dev]'
exec .venv/bin/python -m pytest "$@"
