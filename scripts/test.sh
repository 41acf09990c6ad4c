#!/usr/bin/env bash
# Sets up .venv with everything the tests need, then runs the whole suite.
# Extra arguments go to pytest (e.g. ./scripts/test.sh tests/unit -x).
. "$(dirname "$0")/_venv.sh" '[dev]'
exec .venv/bin/python -m pytest "$@"
