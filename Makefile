# Benchmarks (bench/): `make bench` measures vecdb against raw FAISS, Milvus Lite,
# Chroma and LanceDB side by side and rewrites its section of bench/RESULTS.md and
# bench/recall_qps.png. Needs the Debian package wordnet-base (apt-get install -y wordnet-base).
BENCH_PY := .venv-bench/bin/python

.PHONY: bench bench-quick bench-data bench-peers

bench-peers:
	bench/setup_peers.sh

# One-time: embed the WordNet glosses (cached in bench/.cache/wordnet; resumable).
bench-data: bench-peers
	$(BENCH_PY) bench/bench_data.py

bench: bench-peers
	$(BENCH_PY) bench/compare.py $(ARGS)

bench-quick: bench-peers
	$(BENCH_PY) bench/compare.py --quick $(ARGS)
