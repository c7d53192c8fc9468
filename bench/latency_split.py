"""Where a step's latency is spent: inside the server, or after it.

For each S2 rate, one step of roomcast-bench (2,000 clients in 20 rooms of 100, one sender per
room; rates in messages/s, 100 deliveries each) against one roomcast, with the server's own
delivery histogram (`roomcast_delivery_latency_seconds`: from the Hub accepting a message to
the end of the flush that handed its frame to the recipients' sockets) read before and after
the step. Its p50/p99 next to the generator's end-to-end p50/p99 say how much of the latency
is the server's queue and how much is the kernel's buffers and the generator. Server on core
0 (`--threads 1`), generator on core 1, as in history_cost.py.

    /usr/bin/python3 bench/latency_split.py --rates 1000,7000,10000,16000 --mode memory

The histogram has power-of-two buckets, so its quantiles are interpolated within a bucket: a
figure to within a factor of two, enough to tell 1 ms from 30 ms."""

import argparse
import json
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib import REPO, servers  # noqa: E402
from lib.scenarios import flags as scenario_flags, override  # noqa: E402

MODES = {"memory": ["--history-store", "memory"], "default": []}
HISTOGRAM = "roomcast_delivery_latency_seconds_bucket"


def buckets(port):
    """The delivery histogram's cumulative counts by upper bound."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line.startswith(HISTOGRAM):
            bound = line.split('le="')[1].split('"')[0]
            out[float("inf") if bound == "+Inf" else float(bound)] = float(line.split()[-1])
    return out


def quantile(cumulative, q):
    """The q-quantile of a cumulative histogram, interpolated within its bucket."""
    rank = q * cumulative[float("inf")]
    lower, below = 0.0, 0.0
    for bound, count in sorted(cumulative.items()):
        if count >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * ((rank - below) / (count - below) if count > below
                                              else 0.0)
        lower, below = bound, count
    return lower


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", default="1000,7000,10000,16000",
                   help="S2 rates in messages/s, one step each (default %(default)s)")
    p.add_argument("--mode", choices=sorted(MODES), default="memory",
                   help="the history store: memory, or the default (SQLite)")
    p.add_argument("--roomcast", type=Path, default=REPO / "build/src/roomcast")
    p.add_argument("--bench", type=Path, default=REPO / "build/bench/generator/roomcast-bench")
    args = p.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="latency-split-"))
    server = servers.start_roomcast(args.roomcast, "0", scratch / "server.log", "--threads", "1",
                                    "--log-level", "warn", *MODES[args.mode])
    try:
        print("| deliveries/s | end to end p50 / p99 ms | inside the server p50 / p99 ms |")
        print("| --- | --- | --- |")
        for rate in args.rates.split(","):
            flags = override(scenario_flags("S2", argparse.Namespace(quick=False)),
                             {"--rates": rate})
            report = scratch / f"step-{rate}.json"
            before = buckets(server.port)
            subprocess.run(["taskset", "-c", "1", str(args.bench),
                            "--url", f"ws://127.0.0.1:{server.port}/", *flags,
                            "--server-pid", str(server.proc.pid), "--json", str(report), "-q"],
                           check=False, stdout=subprocess.DEVNULL)
            after = buckets(server.port)
            step = json.loads(report.read_text())["steps"][0]
            inside = {bound: after[bound] - before.get(bound, 0.0) for bound in after}
            print(f"| {int(rate) * 100:,} | {step['latency_ms']['p50']:.1f} / "
                  f"{step['latency_ms']['p99']:.1f} | {quantile(inside, 0.5) * 1e3:.1f} / "
                  f"{quantile(inside, 0.99) * 1e3:.1f} |", flush=True)
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
