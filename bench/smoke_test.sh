#!/usr/bin/env bash
# Smoke test of roomcast-bench: starts a real roomcast on a free loopback port, runs a tiny
# fanout ramp (50 connections, rooms of 10, 50 and 100 msgs/s, 2 s steps) and checks that
# the tool exits 0 and that every delivery of the first step arrived. No timing assertions.
#
# Usage: smoke_test.sh ROOMCAST_BINARY ROOMCAST_BENCH_BINARY [LOG_DIR]
set -euo pipefail

server_bin=$1
bench_bin=$2
log_dir=${3:-$(mktemp -d)}
mkdir -p "$log_dir"
server_log=$log_dir/server.log
report=$log_dir/report.json
rm -f "$report"

server_pid=
cleanup() {
  if [[ -n $server_pid ]]; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
}
trap cleanup EXIT

# Port 0 lets the server pick a free port; it logs "listening on http://HOST:PORT".
# Rate limits off: the generator sends far more than 10 messages a minute from one address.
"$server_bin" --host 127.0.0.1 --port 0 --threads 1 --log-level info --data-dir "$log_dir/data" \
  --rate-limit-messages 0 --rate-limit-signals 0 --rate-limit-address-messages 0 --rate-limit-address-signals 0 >"$server_log" 2>&1 &
server_pid=$!
port=
for _ in $(seq 1 100); do
  port=$(sed -n 's/.*listening on http:\/\/[0-9.]*:\([0-9]*\).*/\1/p' "$server_log" | head -n 1)
  [[ -n $port ]] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "smoke_test: the server exited early:" >&2
    cat "$server_log" >&2
    exit 1
  fi
  sleep 0.1
done
if [[ -z $port ]]; then
  echo "smoke_test: the server did not report its port:" >&2
  cat "$server_log" >&2
  exit 1
fi

status=0
"$bench_bin" --url "ws://127.0.0.1:$port/" --connections 50 --clients-per-room 10 \
  --rates 50,100 --step-seconds 2 --no-stop --server-pid "$server_pid" --json "$report" ||
  status=$?
if [[ $status -ne 0 ]]; then
  echo "smoke_test: roomcast-bench exited with status $status" >&2
  exit 1
fi

/usr/bin/python3 - "$report" <<'PY'
import json, sys

with open(sys.argv[1]) as f:
    report = json.load(f)
assert report["completed"], "run not completed"
assert report["setup"]["connections_ok"] == 50, report["setup"]
steps = report["steps"]
assert len(steps) == 2, f"expected 2 steps, got {len(steps)}"
first = steps[0]
assert first["sent"] > 0, "nothing sent in step 1"
assert first["deliveries_expected"] == first["sent"] * 10, first
assert first["deliveries_received"] == first["deliveries_expected"], (
    f"step 1: received {first['deliveries_received']} of {first['deliveries_expected']}")
assert report["health"]["closed_by_server"] == 0, report["health"]
print(f"smoke_test: ok, step 1 delivered {first['deliveries_received']} of "
      f"{first['deliveries_expected']}")
PY
