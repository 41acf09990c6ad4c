#!/usr/bin/env bash
# Sets up .venv and starts the server on its embedded default: 127.0.0.1:50051,
# data in ./data, no other service. Extra arguments go to vecdb-server
# (e.g. ./scripts/serve.sh --port 6000 --data-dir /var/lib/vecdb).
. "$(dirname "$0")/_venv.sh" ''
exec .venv/bin/vecdb-server "$@"
