#!/bin/sh
# The image's install steps, kept out of the Dockerfiles so that CI runs the very
# same commands without Docker (tests/deploy/test_image_recipe.py).
#
#   install.sh wheels  SRC_DIR WHEEL_DIR   build stage: wheels for vecdb (with its
#                                          [hybrid] extra: full-text collections, and
#                                          [dashboard]: the web dashboard) and every
#                                          dependency, versions from deploy/constraints.txt
#   install.sh runtime WHEEL_DIR VENV_DIR  runtime stage: a venv with vecdb installed
#                                          from those wheels only (no index, no compiler)
#
# Environment: PYTHON (default python3) is the interpreter; VECDB_EXTRA_PIP_ARGS
# (default empty) are extra requirements for the wheels stage, e.g. for the CUDA
# image "torch==2.6.0 --extra-index-url https://download.pytorch.org/whl/cu124".
set -eu

PYTHON=${PYTHON:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
CONSTRAINTS=${VECDB_CONSTRAINTS:-$HERE/constraints.txt}

usage() { echo "usage: $0 wheels SRC_DIR WHEEL_DIR | runtime WHEEL_DIR VENV_DIR" >&2; exit 2; }
[ $# -eq 3 ] || usage

case "$1" in
wheels)
    src=$2 wheels=$3
    build_tmp=$(mktemp -d)
    build_venv=$build_tmp/build-venv
    "$PYTHON" -m venv "$build_venv"
    # shellcheck disable=SC2086  # VECDB_EXTRA_PIP_ARGS is a word list on purpose
    "$build_venv/bin/python" -m pip wheel --disable-pip-version-check -q \
        --constraint "$CONSTRAINTS" --wheel-dir "$wheels" "$src[hybrid,dashboard]" ${VECDB_EXTRA_PIP_ARGS:-}
    rm -rf "$build_tmp"
    ls "$wheels"/vecdb-*.whl >/dev/null
    ;;
runtime)
    wheels=$2 venv=$3
    "$PYTHON" -m venv "$venv"
    # Every wheel built above (vecdb, its dependencies and any extras), offline.
    "$venv/bin/python" -m pip install --no-index --disable-pip-version-check -q \
        --find-links "$wheels" "$wheels"/*.whl
    "$venv/bin/python" -m pip check
    # Byte-compile now: the root filesystem is read-only at run time.
    "$venv/bin/python" -m compileall -q "$venv/lib" >/dev/null
    # Smoke test: the entry point resolves and the native modules import.
    "$venv/bin/vecdb-server" --help >/dev/null
    "$venv/bin/python" -c "import faiss, rocksdict, grpc, grpc_health.v1.health, tantivy, falcon, vecdb, vecdb_server.app"
    ;;
*) usage ;;
esac
