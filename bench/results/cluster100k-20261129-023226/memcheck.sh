#!/bin/bash
# ad hoc: bytes per connection with K cluster nodes, N idle connections in rooms of 100
set -m
K=$1; N=$2; RP=$3; P=$4
D=$(mktemp -d); redis-server --port $RP --bind 127.0.0.1 --save '' --appendonly yes --appendfsync everysec --dir $D > $D/r.log 2>&1 &
R=$!; sleep 0.5; PIDS=()
for i in $(seq $K); do taskset -c 0 /work/main/build/src/roomcast --host 127.0.0.1 --port $P --threads 1 --log-level warn --redis redis://127.0.0.1:$RP --node-id n$i --rate-limit-messages 0 --rate-limit-signals 0 --data-dir $D > $D/n$i.log 2>&1 & PIDS+=($!); done
sleep 1.5; A=(); for p in "${PIDS[@]}"; do A+=(--server-pid $p); done
taskset -c 1 /work/main/build/bench/generator/roomcast-bench --scenario idle --url ws://127.0.0.1:$P/ -n $N --clients-per-room 100 --hold-seconds 3 --settle-timeout 15 "${A[@]}" -q 2>&1 | grep -E "presence|RSS|bytes per"
for p in "${PIDS[@]}"; do kill $p; done; wait "${PIDS[@]}"; kill $R; wait $R; rm -rf $D
