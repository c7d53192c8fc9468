#!/usr/bin/env bash
# The histograms' cost per delivery (issue 17): user-space instructions (callgrind; stable on
# a noisy shared machine, unlike CPU time) of a server built with -DROOMCAST_HISTOGRAMS=ON
# against one built OFF, same load, same run. Per delivery: the difference between a run that
# sends 12 s and one that sends 4 s, over the 40,000 deliveries between them (method of
# bench/OPTIMIZATIONS.md: 200 clients in rooms of 100, 50 msgs/s = 5,000 deliveries/s,
# --threads 1). Usage: bench/histograms/callgrind.sh ON_BINARY OFF_BINARY GENERATOR
set -euo pipefail
on=$1 off=$2 gen=$3
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Rate limits off, as for every test server (tests/test_default_flags.json).
limits=(--rate-limit-messages 0 --rate-limit-signals 0 --rate-limit-address-messages 0
        --rate-limit-address-signals 0)
total() {  # binary seconds port -> instructions of the whole server process
  local bin=$1 seconds=$2 port=$3 out="$work/cg.$port"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" --host 127.0.0.1 --port "$port" \
    --threads 1 --data-dir "$work/data.$port" "${limits[@]}" >"$work/log.$port" 2>&1 &
  local pid=$!
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.1
  done
  "$gen" --url "ws://127.0.0.1:$port/" -n 200 --clients-per-room 100 --rates 50 \
    --step-seconds "$seconds" --no-stop --source-ips 0 >"$work/gen.$port" 2>&1
  kill -TERM "$pid"
  wait "$pid" || true
  grep -m1 '^summary:' "$out" | awk '{print $2}'
}
printf '| build | 4 s of sending | 12 s of sending | per delivery |\n| --- | --- | --- | --- |\n'
port=4301
for build in ON OFF; do
  bin=$on
  [ "$build" = OFF ] && bin=$off
  short=$(total "$bin" 4 $port); port=$((port + 1))
  long=$(total "$bin" 12 $port); port=$((port + 1))
  printf '| %s | %s | %s | %s |\n' "$build" "$short" "$long" \
    "$(( (long - short) / 40000 ))"
done
