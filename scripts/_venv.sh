# Sourced by serve.sh and test.sh: create .venv once and install the project into it.
# usage: . scripts/_venv.sh EXTRAS   (EXTRAS: "" or "[dev]")
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/pip install -q --upgrade pip
.venv/bin/pip install -q -e ".$1"
