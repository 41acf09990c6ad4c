#!/usr/bin/env bash
# Create .venv-bench: vecdb (editable, with the encoders extra for the data set) plus the
# peers bench/compare.py measures against, pinned to versions that install together
# (one numpy, one faiss-cpu, grpcio/protobuf new enough for vecdb's stubs).
#
#   bench/setup_peers.sh            # idempotent: does nothing when the pins are installed
#   PYTHON=python3.11 bench/setup_peers.sh
#
# Also needs the Debian package wordnet-base (the data set): apt-get install -y wordnet-base
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
VENV="${VENV_BENCH:-$ROOT/.venv-bench}"
PYTHON="${PYTHON:-}"
if [ -z "$PYTHON" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PYTHON="$ROOT/.venv/bin/python"; else PYTHON=python3; fi
fi

PINS=(
  "torch==2.13.0+cpu"          # CPU wheel; a bare torch>=2.1 would pull the CUDA build
  "chromadb==1.5.9"
  "pymilvus==3.0.2"
  "milvus-lite==3.2.2"         # pure-Python engine over faiss-cpu (HNSW, IVF_FLAT, ...)
  "lancedb==0.40.0"
  "pyarrow==26.0.1"
  "matplotlib==3.11.2"
)
STAMP="$VENV/.bench-pins"
WANT="$(printf '%s\n' "${PINS[@]}")"

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && "$VENV/bin/python" -c "import vecdb, chromadb, pymilvus, lancedb" 2>/dev/null; then
  echo "setup_peers: $VENV is up to date"
  exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup_peers: creating $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q -U pip
fi
echo "setup_peers: installing vecdb (editable) and the peers (a few minutes the first time)"
"$VENV/bin/python" -m pip install -q -e "$ROOT[encoders]" "${PINS[@]}"
"$VENV/bin/python" -m pip check
if [ ! -f /usr/share/wordnet/data.noun ]; then
  echo "setup_peers: note: /usr/share/wordnet is missing; run: apt-get install -y wordnet-base" >&2
fi
echo "$WANT" > "$STAMP"
"$VENV/bin/python" - <<'EOF'
from importlib.metadata import version
print("setup_peers: ready:", ", ".join(f"{p} {version(p)}" for p in (
    "vecdb", "faiss-cpu", "numpy", "grpcio", "chromadb", "pymilvus", "milvus-lite", "lancedb")))
EOF
