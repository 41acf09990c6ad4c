# Sourced by serve.sh and test.sh: create .venv once and install the project into it.
# usage: . scripts/_venv.sh EXTRAS [MORE PIP REQUIREMENTS...]   (EXTRAS: "", "[encoders]", "[dev]")
# The editable install follows code changes by itself, so pip runs only on the first
# start and again when a packaging file, this script or the requested set changes
# (a stamp in .venv records what was installed).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
# (re)create: --clear also drops the stamps of a venv whose python is gone
[ -x .venv/bin/python ] || "$PY" -m venv --clear .venv
_stamp=".venv/.vecdb-installed$1"
_want="$(cat pyproject.toml client/pyproject.toml scripts/_venv.sh | cksum) $*"
if [ "$(cat "$_stamp" 2>/dev/null)" != "$_want" ]; then
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -e ".$1" "${@:2}"
    echo "$_want" > "$_stamp"
fi
