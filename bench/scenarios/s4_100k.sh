#!/bin/bash
# S4: 100,000 concurrent connections: 6 roomcast processes share one port (SO_REUSEPORT),
# 6 generator processes; heartbeat every 5 s, idle timeout 10 s, hold 10 s.
# Usage: bench/scenarios/s4_100k.sh (after scripts/build); prints the generator's table.
cd "$(dirname "$0")/../.."
PORT=4300
PIDS=()
for i in 0 1 2 3 4 5; do
  taskset -c 0 build/src/roomcast --host 127.0.0.1 --port $PORT --threads 1 --log-level warn \
      --ping-interval 5s --idle-timeout 10s --data-dir /tmp/s4-data-$i > /tmp/s4-server-$i.log 2>&1 &
  PIDS+=($!)
done
sleep 1
ARGS=()
for p in "${PIDS[@]}"; do ARGS+=(--server-pid "$p"); done
taskset -c 1 build/bench/generator/roomcast-bench --scenario idle --url ws://127.0.0.1:$PORT/ \
    -n 100000 --processes 6 --clients-per-room 100 --hold-seconds 10 --connect-timeout 60 \
    --settle-timeout 120 "${ARGS[@]}" --json /tmp/s4.json 2>&1 | tail -22
for p in "${PIDS[@]}"; do if kill -0 $p 2>/dev/null; then echo "server $p alive"; else wait $p; echo "server $p exited rc=$?"; fi; done; kill "${PIDS[@]}" 2>/dev/null; wait
