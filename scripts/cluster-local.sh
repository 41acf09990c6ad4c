#!/usr/bin/env bash
# A 3-node cluster on loopback for trying cluster mode (docs/cluster.md): etcd on
# 127.0.0.1:2379 and vecdb nodes n1..n3 on 127.0.0.1:50061-50063, data in
# ./cluster-data. Ctrl-C stops everything. Needs etcd (Debian: apt-get install etcd-server).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v etcd >/dev/null || { echo "etcd not found: apt-get install etcd-server" >&2; exit 1; }
. scripts/_venv.sh '[encoders]' "${VECDB_TORCH:-torch==2.13.0}"
DATA=${CLUSTER_DATA:-./cluster-data}
mkdir -p "$DATA"
export VECDB_CLUSTER_SECRET=${VECDB_CLUSTER_SECRET:-local-dev-secret}
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' EXIT INT TERM
etcd --data-dir "$DATA/etcd" --listen-client-urls http://127.0.0.1:2379 \
     --advertise-client-urls http://127.0.0.1:2379 --listen-peer-urls http://127.0.0.1:2380 \
     > "$DATA/etcd.log" 2>&1 &
pids+=($!)
sleep 1
for i in 1 2 3; do
    .venv/bin/vecdb-server --port "5006$i" --metrics-port -1 --data-dir "$DATA/n$i" \
        --cluster-etcd http://127.0.0.1:2379 --node-id "n$i" --advertise "127.0.0.1:5006$i" \
        > "$DATA/n$i.log" 2>&1 &
    pids+=($!)
done
echo "cluster up: nodes 127.0.0.1:50061-50063 (logs in $DATA); Ctrl-C stops it"
echo "  .venv/bin/vecdbctl --host 127.0.0.1:50061 cluster status"
wait
