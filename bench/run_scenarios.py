#!/usr/bin/python3
"""Runs the benchmark scenarios of bench/README.md against roomcast and the Node baseline and
writes bench/RESULTS.md (tables, targets, commands, machine) plus latency plots.

For each scenario, for each run, for each server (interleaved: roomcast, node, roomcast, node):
start the server pinned to one core on a free loopback port, wait for /healthz, run
roomcast-bench pinned to another core with --json and --server-pid, stop the server (SIGTERM,
SIGKILL after 5 s). Raw JSON, generator output and server logs stay in the --out directory
(with a manifest.json), from which --aggregate-only can rebuild RESULTS.md later.

Usage (from anywhere; paths are relative to the repository):
    /usr/bin/python3 bench/run_scenarios.py                      # full: S1,S2,S3 x 2 runs
    /usr/bin/python3 bench/run_scenarios.py --quick              # tiny sizes, checks the script
    /usr/bin/python3 bench/run_scenarios.py --aggregate-only bench/results/20260101-120000

Standard library + matplotlib (Debian python3-matplotlib) only.
"""

import argparse
import atexit
import datetime
import json
import os
import platform
import shlex
import signal
import statistics
import subprocess
import tempfile
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import lib  # noqa: E402,F401  (puts the test harness on sys.path)
from roomcast_server import free_port  # noqa: E402

REPO = lib.REPO
SERVERS = ("roomcast", "node")
SCENARIO_IDS = ("S1", "S2", "S3")

# --------------------------------------------------------------------------------------------
# Scenario definitions. "gen" are roomcast-bench flags (besides --url, --server-pid, --json).
# --------------------------------------------------------------------------------------------

S2_RATES_FULL = [100, 200, 500, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000,
                 12000, 14000, 16000, 18000, 20000]
S3_RATES_FULL = [10, 20, 50, 100, 150, 200, 300, 400, 600, 800, 1000, 1500]


def rates_flag(rates):
    return ",".join(str(r) for r in rates)


SCENARIOS = {
    "S1": {
        "title": "S1 idle: 10,000 connections in 100 rooms of 100",
        "short": "S1 idle",
        "kind": "idle",
        "full": ["--scenario", "idle", "--connections", "10000", "--clients-per-room", "100",
                 "--join-rate", "100000", "--hold-seconds", "40", "--connect-timeout", "30",
                 "--settle-timeout", "60"],
        "quick": ["--scenario", "idle", "--connections", "1000", "--clients-per-room", "100",
                  "--join-rate", "100000", "--hold-seconds", "3", "--connect-timeout", "30",
                  "--settle-timeout", "30"],
    },
    "S2": {
        "title": "S2 fan-out: 2,000 clients in 20 rooms of 100, one sender per room",
        "short": "S2 fan-out",
        "kind": "ramp",
        "full": ["--scenario", "fanout", "--connections", "2000", "--clients-per-room", "100",
                 "--senders-per-room", "1", "--rates", rates_flag(S2_RATES_FULL),
                 "--step-seconds", "10", "--settle-timeout", "60"],
        "quick": ["--scenario", "fanout", "--connections", "400", "--clients-per-room", "100",
                  "--senders-per-room", "1", "--rates", "100,500,1000,2000,4000,8000,16000",
                  "--step-seconds", "2", "--settle-timeout", "30"],
    },
    "S3": {
        "title": "S3 big room: 5,000 clients in one room, one sender",
        "short": "S3 big room",
        "kind": "ramp",
        "full": ["--scenario", "bigroom", "--connections", "5000", "--senders-per-room", "1",
                 "--rates", rates_flag(S3_RATES_FULL), "--step-seconds", "10",
                 "--connect-timeout", "30", "--settle-timeout", "60"],
        "quick": ["--scenario", "bigroom", "--connections", "500", "--senders-per-room", "1",
                  "--rates", "10,20,50,100,200,400", "--step-seconds", "2", "--settle-timeout", "30"],
    },
}

# The targets (roomcast, one worker thread on one core).
TARGET_S2_RATIO = 10.0
TARGET_S2_DELIVERIES = 850_000
TARGET_S2_P99_MS = 25.0
TARGET_S2_P99_AT = 100_000
UWS_US_PER_DELIVERY = 9.0  # uWebSockets reference: ~9 us of server CPU per delivery at 50k/s
TARGET_S1_BYTES = 700
TARGET_S1_HANDSHAKES = 20_000
TARGET_S3_JOIN_S = 10.0

INTRO = """\
# roomcast benchmark results

roomcast (one I/O worker thread, `--threads 1`) against the Node.js baseline the issue compares
with (`bench/baselines/node-chat-server.js`: the book chapter's server on the `ws` package,
deliberately untuned; see `bench/baselines/README.md`). Both run in the same invocation of
`bench/run_scenarios.py`, interleaved run by run (roomcast, node, roomcast, node...) so both
see the same machine conditions. The server is pinned to one core (`taskset -c {server_core}`)
and the load generator `roomcast-bench` to another (`taskset -c {generator_core}`), both on
loopback. Figures are medians over the runs; ratios are roomcast's advantage (higher-is-better
figures: roomcast / node; lower-is-better: node / roomcast).

A ramp step passes when at least 95% of its deliveries arrive (within the step plus its grace
time) and p99 latency is at most 250 ms; the sustained figure is the deliveries/s of the highest
passing step. A step is *generator-bound* when a generator process used more than 90% of its
core: it then measures the generator, not the server, and server CPU per delivery is the
comparable figure. Latency is measured by the receivers from the send timestamp carried in each
message, so it includes the generator's own queueing.

This file is generated by `bench/run_scenarios.py` from the raw reports in `{out_dir}`; edit
the template in the script, not this file.
"""

# --------------------------------------------------------------------------------------------
# Process handling: every child is tracked so that it is killed however the script ends.
# --------------------------------------------------------------------------------------------

_live = []  # Popen objects started in their own session


def _kill_group(proc, grace_s):
    """SIGTERM the process group of proc, SIGKILL it after grace_s. Returns the exit code."""
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            pass
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
    else:
        # The leader is gone; make sure nothing it forked (generator workers) lingers.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    if proc in _live:
        _live.remove(proc)
    return proc.returncode


def _kill_all():
    for proc in list(_live):
        _kill_group(proc, 2)


def _become_subreaper():
    """Orphans (generator workers whose coordinator died first) get reparented to this script,
    which reaps them, instead of lingering as zombies under a PID 1 that may not reap."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def _reap_orphans():
    """Reaps exited children no Popen object owns. Call only when no tracked child is alive."""
    if _live:
        return
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _on_signal(signum, _frame):
    raise SystemExit(f"run_scenarios: interrupted by signal {signum}")


def spawn(argv, log_path):
    log = open(log_path, "wb")
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO)
    finally:
        log.close()
    _live.append(proc)
    return proc


class RunError(Exception):
    pass


def die(message):
    print(f"run_scenarios: error: {message}", file=sys.stderr)
    sys.exit(2)


# --------------------------------------------------------------------------------------------
# Servers
# --------------------------------------------------------------------------------------------

def server_argv(args, server, port):
    pin = ["taskset", "-c", str(args.server_core)]
    if server == "roomcast":
        # Rate limits off: the load generator sends thousands of messages a second per address.
        return pin + [str(args.roomcast), "--host", "127.0.0.1", "--port", str(port),
                      "--threads", "1", "--log-level", "warn",
                      "--rate-limit-messages", "0", "--rate-limit-signals", "0",
                      "--rate-limit-address-messages", "0", "--rate-limit-address-signals", "0",
                      "--data-dir", tempfile.mkdtemp(prefix="roomcast-bench-data-")]
    return pin + [str(args.node), str(REPO / "bench/baselines/node-chat-server.js"),
                  "--host", "127.0.0.1", "--port", str(port)]


def healthy(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def start_server(args, server, log_path, timeout_s=15):
    """Starts the server on a free port; returns (proc, port). Retries if the port was taken."""
    last = ""
    for _attempt in range(3):
        port = free_port()
        argv = server_argv(args, server, port)
        proc = spawn(argv, log_path)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            if healthy(port):
                return proc, port, argv
            time.sleep(0.1)
        code = _kill_group(proc, 5)
        last = Path(log_path).read_text(errors="replace")[-2000:]
        if code is None or "EADDRINUSE" not in last and "in use" not in last:
            break
    raise RunError(f"{server} did not become healthy on /healthz within {timeout_s} s; "
                   f"log tail:\n{last}")


def rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


# --------------------------------------------------------------------------------------------
# One generator run
# --------------------------------------------------------------------------------------------

def flag_value(flags, name, default):
    return float(flags[flags.index(name) + 1]) if name in flags else default


def generator_timeout(flags):
    """An upper bound on a healthy generator run, from its own deadlines, plus slack."""
    n = flag_value(flags, "--connections", 1000)
    connect_timeout = flag_value(flags, "--connect-timeout", 10)
    join_rate = flag_value(flags, "--join-rate", 5000)
    settle = flag_value(flags, "--settle-timeout", 30)
    step = flag_value(flags, "--step-seconds", 10)
    grace = flag_value(flags, "--grace-seconds", 2)
    steps = len(flags[flags.index("--rates") + 1].split(",")) if "--rates" in flags else 0
    hold = flag_value(flags, "--hold-seconds", 40) if "idle" in flags else 0
    connect = (n / 512 + 1) * connect_timeout
    return connect + n / join_rate + connect_timeout + settle + steps * (step + grace + 2) \
        + hold + 60


def last_error_line(path):
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    errors = [line for line in lines if "error" in line.lower()]
    return (errors or lines or [""])[-1].strip()[:400]


def run_one(args, scenario_id, run_index, server, out_dir):
    flags = SCENARIOS[scenario_id]["quick" if args.quick else "full"]
    stem = f"{scenario_id}-run{run_index}-{server}"
    server_log = out_dir / f"{stem}.server.log"
    json_path = out_dir / f"{stem}.json"
    gen_out = out_dir / f"{stem}.generator.txt"
    entry = {"scenario": scenario_id, "run": run_index, "server": server,
             "json": json_path.name, "server_log": server_log.name, "generator_log": gen_out.name,
             "ok": False, "error": "", "started": datetime.datetime.now().isoformat(
                 timespec="seconds")}
    server_proc = None
    gen_proc = None
    t0 = time.monotonic()
    try:
        server_proc, port, sargv = start_server(args, server, server_log)
        entry["server_command"] = sargv
        gen_argv = ["taskset", "-c", str(args.generator_core), str(args.bench), *flags,
                    "--url", f"ws://127.0.0.1:{port}/", "--server-pid", str(server_proc.pid),
                    "--json", str(json_path)]
        entry["generator_command"] = gen_argv
        limit_s = generator_timeout(flags)
        rss_limit = args.max_server_rss_mib * 1024 * 1024
        peak_rss = 0
        gen_proc = spawn(gen_argv, gen_out)
        deadline = time.monotonic() + limit_s
        while gen_proc.poll() is None:
            if time.monotonic() > deadline:
                _kill_group(gen_proc, 5)
                raise RunError(f"generator still running after {limit_s:.0f} s; killed")
            rss = rss_bytes(server_proc.pid)
            if rss is not None:
                peak_rss = max(peak_rss, rss)
                if rss > rss_limit:
                    _kill_group(server_proc, 0)
                    entry["error"] = (f"server RSS {rss / 2**20:.0f} MiB exceeded "
                                      f"--max-server-rss-mib {args.max_server_rss_mib}; killed")
            if server_proc.poll() is not None and not entry["error"]:
                entry["error"] = f"server exited with status {server_proc.returncode} during the run"
            try:
                gen_proc.wait(timeout=0.5)
            except subprocess.TimeoutExpired:
                pass
        code = gen_proc.returncode
        if gen_proc in _live:
            _live.remove(gen_proc)
        entry["generator_exit"] = code
        entry["server_peak_rss_bytes"] = peak_rss
        if code != 0 and not entry["error"]:
            entry["error"] = f"generator exit {code}: {last_error_line(gen_out)}"
        if not json_path.exists():
            entry["json"] = None
            if not entry["error"]:
                entry["error"] = "no JSON report written"
        entry["ok"] = code == 0 and not entry["error"]
    except RunError as e:
        entry["error"] = str(e)
    finally:
        if gen_proc is not None:
            _kill_group(gen_proc, 5)
        if server_proc is not None:
            entry["server_exit"] = _kill_group(server_proc, 5)
        _reap_orphans()
        entry["seconds"] = round(time.monotonic() - t0, 1)
    return entry


# --------------------------------------------------------------------------------------------
# Aggregation
# --------------------------------------------------------------------------------------------

def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def load_reports(out_dir, manifest):
    """{scenario: {server: [report or None per run]}} plus the failed entries."""
    by = {}
    for entry in manifest["runs"]:
        report = None
        if entry.get("json"):
            try:
                report = json.loads((out_dir / entry["json"]).read_text())
            except (OSError, ValueError) as e:
                entry["error"] = entry.get("error") or f"unreadable JSON: {e}"
        entry["report"] = report
        by.setdefault(entry["scenario"], {}).setdefault(entry["server"], []).append(entry)
    return by


def highest_pass(report):
    """The highest passing step of a ramp (or None) and the step after it (the first failure)."""
    best = None
    fail = None
    for step in report.get("steps", []):
        if step["passed"]:
            best = step
        elif fail is None:
            fail = step
    return best, fail


def us_per_delivery(step):
    cpu = step.get("server_cpu_seconds")
    received = step.get("deliveries_received") or 0
    if cpu is None or received == 0:
        return None
    return cpu / received * 1e6


def aggregate_ramp(entries):
    """Per-step medians over runs (keyed by target rate) and the sustained figure."""
    steps = {}
    figures = []
    bound_at_figure = []
    exhausted = []
    join_s = []
    settle_s = []
    complete_runs = 0
    for entry in entries:
        report = entry["report"]
        if report is None:
            continue
        if report.get("completed"):
            complete_runs += 1
        join_s.append(report["setup"].get("join_seconds"))
        settle_s.append(report["setup"].get("presence_settled_seconds"))
        for step in report.get("steps", []):
            rec = steps.setdefault(step["target_rate"], {"dps": [], "p50": [], "p99": [],
                                                         "share": [], "us": [], "passed": 0,
                                                         "runs": 0, "bound": 0, "gencpu": [],
                                                         "cpu": []})
            rec["runs"] += 1
            rec["dps"].append(step["deliveries_per_second"])
            rec["p50"].append(step["latency_ms"]["p50"])
            rec["p99"].append(step["latency_ms"]["p99"])
            rec["share"].append(step["delivered_share"])
            rec["us"].append(us_per_delivery(step))
            rec["passed"] += 1 if step["passed"] else 0
            rec["bound"] += 1 if step["generator_bound"] else 0
            rec["gencpu"].append(max(step.get("generator_cpu_share") or [0]))
            cpu = step.get("server_cpu_seconds")
            window = step.get("window_seconds") or 0
            rec["cpu"].append(cpu / window if cpu is not None and window > 0 else None)
        best, fail = highest_pass(report)
        # No step failed and every rate was run: the figure is only a lower bound.
        exhausted.append(fail is None and best is not None and
                         len(report.get("steps", [])) == len(report["config"]["rates"]))
        figures.append(best["deliveries_per_second"] if best else 0.0)
        # Generator-bound if the top passing step or the failing step measured the generator.
        bound_at_figure.append(bool((best and best["generator_bound"]) or
                                    (fail and fail["generator_bound"])))
    table = []
    for rate in sorted(steps):
        rec = steps[rate]
        table.append({"rate": rate, "dps": median(rec["dps"]), "p50": median(rec["p50"]),
                      "p99": median(rec["p99"]), "share": median(rec["share"]),
                      "us": median(rec["us"]), "passed": rec["passed"], "runs": rec["runs"],
                      "bound": rec["bound"], "gencpu": median(rec["gencpu"]),
                      "cpu": median(rec["cpu"])})
    return {"steps": table, "figure": median(figures) if figures else None,
            "figures": figures, "bound": any(bound_at_figure),
            "exhausted": bool(exhausted) and all(exhausted),
            "join_s": median(join_s), "settle_s": median(settle_s),
            "complete_runs": complete_runs, "reports": sum(1 for e in entries if e["report"])}


def aggregate_idle(entries):
    keys = {"hs": ("setup", "handshakes_per_second"), "joins": ("setup", "joins_per_second"),
            "bpc": ("server", "bytes_per_connection"), "connect_s": ("setup", "connect_seconds"),
            "join_s": ("setup", "join_seconds"), "rss_before": ("server", "rss_before_bytes"),
            "rss_hold": ("server", "rss_holding_bytes"),
            "cpu_hold": ("server", "cpu_holding_seconds")}
    out = {k: [] for k in keys}
    out["all_open"] = []
    out["closed"] = []
    out["conns"] = []
    for entry in entries:
        report = entry["report"]
        if report is None:
            continue
        for k, (section, field) in keys.items():
            out[k].append(report.get(section, {}).get(field))
        out["all_open"].append(report.get("hold", {}).get("all_open"))
        out["closed"].append(report.get("health", {}).get("closed_by_server"))
        out["conns"].append(report["setup"].get("connections_ok"))
    result = {k: median(v) for k, v in out.items() if k not in ("all_open",)}
    result["all_open"] = all(v is True for v in out["all_open"]) if out["all_open"] else None
    result["reports"] = len(out["hs"])
    return result


# --------------------------------------------------------------------------------------------
# Formatting
# --------------------------------------------------------------------------------------------

def pct(share):
    return None if share is None else 100 * share


def num(value, decimals=0, unit=""):
    if value is None:
        return "n/a"
    return f"{value:,.{decimals}f}{unit}"


def ratio(a, b, higher_better=True):
    if a is None or b is None:
        return "n/a"
    if higher_better:
        return f"{a / b:.1f}x" if b > 0 else ("n/a (baseline 0)" if a > 0 else "n/a")
    return f"{b / a:.1f}x" if a > 0 else "n/a"


def failure_note(entries):
    notes = []
    for e in entries:
        if e.get("error"):
            notes.append(f"run {e['run']}: {e['error']}")
    return notes


def machine_info():
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass

    def out(argv):
        try:
            return subprocess.run(argv, cwd=REPO, capture_output=True, text=True,
                                  timeout=10).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = out(["git", "rev-parse", "--short", "HEAD"])
    dirty = out(["git", "status", "--porcelain", "--untracked-files=no"])
    build_type = ""
    cache = REPO / "build/CMakeCache.txt"
    if cache.exists():
        for line in cache.read_text(errors="replace").splitlines():
            if line.startswith("CMAKE_BUILD_TYPE:"):
                build_type = line.split("=", 1)[1]
    return {"cpu": cpu, "cores": os.cpu_count(), "memory": mem, "kernel": platform.release(),
            "os": platform.platform(), "node": out(["node", "--version"]),
            "commit": commit + (" (with uncommitted changes)" if dirty else ""),
            "build_type": build_type or "unknown",
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds")}


def display_command(argv, port_placeholder=True):
    """The command with repository-relative paths and PORT/PID/FILE placeholders."""
    shown = []
    prev = None
    for arg in argv:
        text = str(arg)
        if text.startswith(str(REPO) + "/"):
            text = text[len(str(REPO)) + 1:]
        if port_placeholder:
            if prev == "--port":
                text = "PORT"
            elif prev == "--server-pid":
                text = "PID"
            elif prev == "--json":
                text = "REPORT.json"
            elif text.startswith("ws://127.0.0.1:"):
                text = "ws://127.0.0.1:PORT/"
        shown.append(text)
        prev = str(arg)
    return shlex.join(shown)


# --------------------------------------------------------------------------------------------
# Plots
# --------------------------------------------------------------------------------------------

def plot_ramp(path, title, aggregates):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    colors = {"roomcast": "#1f77b4", "node": "#d62728"}
    drawn = False
    for server, agg in aggregates.items():
        points = [s for s in agg["steps"] if s["dps"] and s["p50"] is not None]
        if not points:
            continue
        drawn = True
        xs = [s["dps"] for s in points]
        color = colors.get(server, None)
        ax.plot(xs, [max(s["p50"], 0.01) for s in points], "-o", color=color, markersize=4,
                label=f"{server} p50")
        ax.plot(xs, [max(s["p99"], 0.01) for s in points], "--s", color=color, markersize=4,
                label=f"{server} p99")
        failed = [s for s in points if s["passed"] * 2 < s["runs"]]  # failed in most runs
        if failed:
            ax.plot([s["dps"] for s in failed], [max(s["p99"], 0.01) for s in failed], "x",
                    color="black", markersize=9, markeredgewidth=2)
    if not drawn:
        plt.close(fig)
        return False
    ax.plot([], [], "x", color="black", markersize=9, markeredgewidth=2, label="step failed")
    ax.axhline(250, color="grey", linewidth=0.8, linestyle=":")
    ax.annotate("250 ms: step fails above", xy=(1, 250), xycoords=("axes fraction", "data"),
                xytext=(-4, 3), textcoords="offset points", ha="right", fontsize=7,
                color="grey")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("deliveries/s")
    ax.set_ylabel("latency, ms")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


# --------------------------------------------------------------------------------------------
# RESULTS.md
# --------------------------------------------------------------------------------------------

def status(ok):
    return "**met**" if ok else "**not met**"


def write_results(out_dir, manifest, results_path, plot_dir):
    by = load_reports(out_dir, manifest)
    quick = manifest["quick"]
    servers = manifest["servers"]
    info = manifest["machine"]
    rel_out = os.path.relpath(out_dir, results_path.parent)
    lines = [INTRO.format(server_core=manifest["server_core"],
                          generator_core=manifest["generator_core"], out_dir=rel_out), ""]
    if quick:
        lines += ["> **Quick run** (`--quick`): tiny sizes that check the script, not the "
                  "server. The figures below are not the issue's scenarios and the targets are "
                  "evaluated against them only for illustration.", ""]
    lines += ["## Machine", "",
              f"- CPU: {info['cpu']} ({info['cores']} cores visible), memory {info['memory']}",
              f"- Kernel: {info['kernel']} ({info['os']})",
              f"- Date: {info['date']}",
              f"- roomcast: commit {info['commit']}, build type {info['build_type']}; "
              f"Node {info['node']}",
              f"- Runs per server and scenario: {manifest['runs_per_server']}", ""]
    target_rows = []
    summary = {}

    if "S1" in by:
        aggs = {s: aggregate_idle(by["S1"].get(s, [])) for s in servers}
        summary["S1"] = aggs
        lines += [f"## {SCENARIOS['S1']['title']}", "", sizes_line(by["S1"]), "",
                  "| figure (median) | " + " | ".join(servers) +
                  (" | roomcast advantage |" if len(servers) == 2 else " |"),
                  "| --- |" + " --- |" * (len(servers) + (1 if len(servers) == 2 else 0))]
        rows = [("connections established", "conns", 0, True, False),
                ("handshakes/s", "hs", 0, True, True),
                ("connect time, s", "connect_s", 2, False, False),
                (f"joins/s (offered: {num(aggs_join_rate(by['S1']))}/s)", "joins", 0, True, True),
                ("join time, s", "join_s", 2, False, True),
                ("server RSS before connecting, MiB", "rss_before", 1, False, False),
                ("server RSS at the end of the hold, MiB", "rss_hold", 1, False, False),
                ("server bytes per connection", "bpc", 0, False, True),
                ("server CPU during the hold, s", "cpu_hold", 2, False, False),
                ("connections closed by the server", "closed", 0, False, False),
                ("still open after the hold (heartbeats answered)", "all_open", None, True,
                 False)]
        for label, key, dec, higher, with_ratio in rows:
            vals = [aggs[s].get(key) for s in servers]
            if key == "all_open":
                lines.append(f"| {label} | " + " | ".join(
                    "n/a" if v is None else ("all" if v else "**NO**") for v in vals) +
                    (" | |" if len(servers) == 2 else " |"))
                continue
            if key.startswith("rss"):
                vals = [v / 2**20 if v is not None else None for v in vals]
            cells = [num(v, dec) for v in vals]
            if len(servers) == 2:
                cells.append(ratio(vals[0], vals[1], higher) if with_ratio else "")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
        lines += notes_block(by["S1"], servers)
        rc = aggs.get("roomcast")
        if rc and rc["reports"]:
            bpc = rc.get("bpc")
            hs = rc.get("hs")
            target_rows.append(("S1", f"<= {TARGET_S1_BYTES} bytes of RSS per idle joined "
                                "connection", num(bpc, 0, " bytes"),
                                status(bpc is not None and bpc <= TARGET_S1_BYTES)))
            target_rows.append(("S1", f">= {TARGET_S1_HANDSHAKES:,} handshakes/s",
                                num(hs, 0, "/s"),
                                status(hs is not None and hs >= TARGET_S1_HANDSHAKES)))

    plots = []
    for sid in ("S2", "S3"):
        if sid not in by:
            continue
        aggs = {s: aggregate_ramp(by[sid].get(s, [])) for s in servers}
        summary[sid] = aggs
        lines += [f"## {SCENARIOS[sid]['title']}", "", sizes_line(by[sid]), ""]
        # Headline table.
        head = ["| figure (median) | " + " | ".join(servers) +
                (" | roomcast advantage |" if len(servers) == 2 else " |"),
                "| --- |" + " --- |" * (len(servers) + (1 if len(servers) == 2 else 0))]
        lines += head

        def row(label, values, dec=0, higher=True, with_ratio=True, unit=""):
            cells = [num(v, dec, unit) for v in values]
            if len(servers) == 2:
                cells.append(ratio(values[0], values[1], higher) if with_ratio else "")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")

        row("sustained deliveries/s (highest passing step)",
            [aggs[s]["figure"] if aggs[s]["reports"] else None for s in servers])
        lines.append("| ...limited by | " + " | ".join(
            limited_by(aggs[s]) for s in servers) + (" | |" if len(servers) == 2 else " |"))
        top_us = []
        for s in servers:
            passing = [st for st in aggs[s]["steps"] if st["passed"] * 2 >= st["runs"]
                       and st["passed"]]
            top_us.append(passing[-1]["us"] if passing else None)
        row("server CPU per delivery at that step, us", top_us, 2, higher=False)
        if sid == "S3":
            row("join time, s", [aggs[s]["join_s"] for s in servers], 2, higher=False)
            row("presence settled (full user_list everywhere), s",
                [aggs[s]["settle_s"] for s in servers], 2, higher=False)
        lines.append("| runs completed / reports | " + " | ".join(
            f"{aggs[s]['complete_runs']} / {aggs[s]['reports']} of "
            f"{len(by[sid].get(s, []))}" for s in servers) +
            (" | |" if len(servers) == 2 else " |"))
        lines.append("")
        # Per-step tables.
        for s in servers:
            agg = aggs[s]
            if not agg["steps"]:
                continue
            lines += [f"**{s}**, per step (medians over the runs that reached the step):", "",
                      "| target msgs/s | deliveries/s | delivered | p50 ms | p99 ms | "
                      "server CPU | server CPU us/delivery | generator CPU | passed (runs) |",
                      "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
            for st in agg["steps"]:
                passed = f"{st['passed']}/{st['runs']}"
                if st["bound"]:
                    passed += f", generator-bound in {st['bound']}"
                lines.append(
                    f"| {num(st['rate'])} | {num(st['dps'])} | {num(100 * st['share'], 1)}% | "
                    f"{num(st['p50'], 2)} | {num(st['p99'], 2)} | "
                    f"{num(pct(st['cpu']), 0)}% | {num(st['us'], 2)} | "
                    f"{num(pct(st['gencpu']), 0)}% | {passed} |")
            lines.append("")
        lines += notes_block(by[sid], servers)
        png = plot_dir / f"{sid.lower()}_latency{'_quick' if quick else ''}.png"
        if plot_ramp(png, f"{SCENARIOS[sid]['short']}: latency (median over runs) vs delivered rate", aggs):
            rel = os.path.relpath(png, results_path.parent)
            lines += [f"![{sid} latency (p50, p99) against delivered rate]({rel})", ""]
            plots.append(png)

        rc = aggs.get("roomcast")
        nd = aggs.get("node")
        if sid == "S2" and rc and rc["reports"]:
            fig = rc["figure"]
            bound = rc["bound"]
            lower = rc["exhausted"]
            inconclusive = ("**inconclusive**: roomcast passed every step, so its figure is a "
                            "lower bound; extend --rates")
            if nd and nd["reports"]:
                r = fig / nd["figure"] if nd["figure"] else None
                target_rows.append((
                    "S2", f">= {TARGET_S2_RATIO:.0f}x the Node baseline's sustained deliveries/s",
                    f"{r:.1f}x" if r is not None else "n/a",
                    status(True) if r is not None and r >= TARGET_S2_RATIO else
                    inconclusive if lower else
                    status(False) + (" (roomcast generator-bound: its figure is a lower bound)"
                                     if bound else "")))
            measured = f"{num(fig)} deliveries/s"
            if fig is not None and fig >= TARGET_S2_DELIVERIES:
                verdict = status(True)
            elif bound:
                # The generator saturated first: compare server CPU per delivery instead.
                best_us = top_us[servers.index("roomcast")] if "roomcast" in servers else None
                near = min((st for st in rc["steps"] if st["us"] is not None and st["dps"]),
                           key=lambda st: abs(st["dps"] - 50_000), default=None)
                projected = 1e6 / best_us if best_us else None
                measured += (f"; generator-bound: server CPU {num(best_us, 2)} us/delivery at "
                             f"the top step (projects to {num(projected)} deliveries/s on a full "
                             f"core)")
                if near:
                    measured += (f", {num(near['us'], 2)} us at {num(near['dps'])}/s vs "
                                 f"uWebSockets ~{UWS_US_PER_DELIVERY:.0f} us at 50k/s")
                verdict = ("not measured (generator-bound); "
                           f"CPU projection {'meets' if projected and projected >= TARGET_S2_DELIVERIES else 'misses'} it")
            else:
                verdict = inconclusive if lower else status(False)
            target_rows.append(("S2", f">= {TARGET_S2_DELIVERIES:,} deliveries/s", measured,
                                verdict))
            room = next(e["report"]["config"]["clients_per_room"]
                        for e in by[sid]["roomcast"] if e["report"])
            at = next((st for st in rc["steps"]
                       if st["rate"] * room == TARGET_S2_P99_AT), None)
            if at is None:
                target_rows.append(("S2", f"p99 <= {TARGET_S2_P99_MS:.0f} ms at "
                                    f"{TARGET_S2_P99_AT:,} deliveries/s",
                                    "step not run", "n/a"))
            else:
                target_rows.append(("S2", f"p99 <= {TARGET_S2_P99_MS:.0f} ms at "
                                    f"{TARGET_S2_P99_AT:,} deliveries/s",
                                    f"p99 {num(at['p99'], 2)} ms at {num(at['dps'])}/s "
                                    f"(target {num(at['rate'])} msgs/s)",
                                    status(at["p99"] is not None and
                                           at["p99"] <= TARGET_S2_P99_MS and
                                           at["share"] >= 0.95)))
        if sid == "S3" and rc and rc["reports"]:
            n = [e["report"]["setup"]["connections_ok"] for e in by[sid]["roomcast"]
                 if e["report"]]
            joined = [e["report"]["setup"]["joins_ok"] for e in by[sid]["roomcast"]
                      if e["report"]]
            all_joined = all(j == c for j, c in zip(joined, n)) and bool(joined)
            js = rc["join_s"]
            want = int(flag_value(SCENARIOS["S3"]["quick" if quick else "full"],
                                  "--connections", 5000))
            target_rows.append(("S3", f"all {want:,} joined in under {TARGET_S3_JOIN_S:.0f} s",
                                f"{num(median(joined))} joined in {num(js, 2)} s",
                                status(all_joined and js is not None and js < TARGET_S3_JOIN_S)))

    lines += ["## Targets (roomcast, one worker thread on one core)", "",
              "| scenario | target | measured (median) | status |", "| --- | --- | --- | --- |"]
    for sid, target, measured, verdict in target_rows:
        lines.append(f"| {sid} | {target} | {measured} | {verdict} |")
    if not target_rows:
        lines.append("| - | no roomcast reports | | |")
    lines.append("")

    lines += ["## How to reproduce", "",
              "Build roomcast and the generator (release build, `build/`), `npm install` for the "
              "baseline's `ws`, then:", "", "```sh",
              "/usr/bin/python3 " + shlex.join(["bench/run_scenarios.py", *manifest["argv"]]),
              "```", "",
              "which runs, for each scenario, run and server (the free port and the server's pid "
              "filled in by the script):", ""]
    for sid in [s for s in SCENARIO_IDS if s in by]:
        lines += [f"{sid}:", "", "```sh"]
        seen = set()
        for e in manifest["runs"]:
            if e["scenario"] != sid:
                continue
            for key in ("server_command", "generator_command"):
                if e.get(key):
                    text = display_command(e[key])
                    if text not in seen:
                        seen.add(text)
                        lines.append(text)
        lines += ["```", ""]
    lines += ["Each server is stopped with SIGTERM (SIGKILL after 5 s) after its generator run; "
              "raw JSON reports, generator output and server logs are kept in the output "
              "directory, and `bench/run_scenarios.py --aggregate-only DIR` regenerates this "
              "file from them.", ""]
    results_path.write_text("\n".join(lines))
    return summary, plots


def aggs_join_rate(entries_by_server):
    for entries in entries_by_server.values():
        for e in entries:
            if e.get("report"):
                return e["report"]["config"]["join_rate"]
    return None


def limited_by(agg):
    if not agg["reports"]:
        return "n/a (no report)"
    if agg["bound"]:
        return "the generator (generator-bound)"
    if agg["exhausted"]:
        return "the ramp's top rate (a lower bound)"
    if agg["figure"] == 0:
        return "server (the first step failed)"
    return "server (next step failed)"


def sizes_line(entries_by_server):
    """What was actually run, from the first report's config."""
    for entries in entries_by_server.values():
        for e in entries:
            rep = e.get("report")
            if not rep:
                continue
            c = rep["config"]
            text = (f"As run: {c['connections']:,} connections in {c['rooms']:,} room(s) of "
                    f"{c['clients_per_room']:,}, join rate {c['join_rate']:,.0f}/s")
            if rep["scenario"] == "idle":
                text += f", held {c['hold_seconds']:g} s"
            else:
                text += (f", {c['total_senders']} sender(s), ramp "
                         f"{', '.join(f'{r:g}' for r in c['rates'])} msgs/s, "
                         f"{c['step_seconds']:g} s a step (+{c['grace_seconds']:g} s grace)")
            return text + "."
    return "No report was produced."


def notes_block(entries_by_server, servers):
    notes = []
    for s in servers:
        for note in failure_note(entries_by_server.get(s, [])):
            notes.append(f"- {s}, {note}")
        for e in entries_by_server.get(s, []):
            rep = e.get("report")
            if rep:
                for w in rep.get("warnings", []):
                    notes.append(f"- {s}, run {e['run']}: warning: {w}")
                if rep.get("stop_reason"):
                    notes.append(f"- {s}, run {e['run']}: ramp stopped: {rep['stop_reason']}")
    return (["Notes:", ""] + notes + [""]) if notes else []


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenarios", default="S1,S2,S3", help="comma-separated subset of S1,S2,S3")
    p.add_argument("--servers", default="roomcast,node", help="comma-separated: roomcast,node")
    p.add_argument("--runs", type=int, default=2, help="runs per scenario and server (>= 1)")
    p.add_argument("--quick", action="store_true",
                   help="tiny sizes and short steps: an end-to-end check of this script")
    p.add_argument("--out", type=Path,
                   help="directory for raw reports and logs (default bench/results/<timestamp>/)")
    p.add_argument("--results", type=Path,
                   help="Markdown file to write (default bench/RESULTS.md; with --quick, "
                        "OUT/RESULTS.md so a quick check never overwrites the real results)")
    p.add_argument("--aggregate-only", type=Path, metavar="DIR",
                   help="do not run anything: rebuild RESULTS.md from DIR/manifest.json")
    p.add_argument("--server-core", type=int, default=0)
    p.add_argument("--generator-core", type=int, default=1)
    p.add_argument("--roomcast", type=Path, default=REPO / "build/src/roomcast")
    p.add_argument("--bench", type=Path, default=REPO / "build/bench/generator/roomcast-bench")
    p.add_argument("--node", default="node", help="node executable")
    p.add_argument("--max-server-rss-mib", type=int, default=4096,
                   help="kill a server whose RSS grows beyond this (the baseline's quadratic "
                        "presence can exhaust memory in S3); the run is then reported as failed")
    p.add_argument("--pause", type=float, default=2.0, help="seconds between runs")
    return p.parse_args(argv)


def check_environment(args, servers):
    from shutil import which
    if which("taskset") is None:
        die("taskset not found (Debian package util-linux)")
    try:
        cores = os.sched_getaffinity(0)
    except AttributeError:
        cores = set(range(os.cpu_count() or 1))
    for name, core in (("--server-core", args.server_core),
                       ("--generator-core", args.generator_core)):
        if core not in cores:
            die(f"{name} {core} is not an available CPU (available: {sorted(cores)})")
    if args.server_core == args.generator_core:
        print("run_scenarios: warning: server and generator share one core", file=sys.stderr)
    args.bench = args.bench.resolve()
    if not (args.bench.is_file() and os.access(args.bench, os.X_OK)):
        die(f"load generator not found at {args.bench}: build it (cmake --build build) "
            "or pass --bench")
    if "roomcast" in servers:
        args.roomcast = args.roomcast.resolve()
        if not (args.roomcast.is_file() and os.access(args.roomcast, os.X_OK)):
            die(f"roomcast binary not found at {args.roomcast}: build it (cmake --build build) "
                "or pass --roomcast")
    if "node" in servers:
        node = which(args.node)
        if node is None:
            die(f"node executable {args.node!r} not found (install nodejs or pass --node)")
        args.node = node
        if not (REPO / "bench/baselines/node-chat-server.js").is_file():
            die("bench/baselines/node-chat-server.js is missing")
        if not (REPO / "node_modules/ws").is_dir():
            die("node_modules/ws is missing: run `npm install` at the repository root")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        die("matplotlib is missing: run scripts/setup --bench "
            "(and run this script with /usr/bin/python3)")


def summarize(summary):
    """A few console lines after the run."""
    out = []
    if "S1" in summary:
        for s, a in summary["S1"].items():
            out.append(f"S1 {s}: {num(a.get('hs'))} handshakes/s, {num(a.get('joins'))} joins/s, "
                       f"{num(a.get('bpc'))} bytes/connection")
    for sid in ("S2", "S3"):
        for s, a in summary.get(sid, {}).items():
            extra = f", join {num(a['join_s'], 2)} s" if sid == "S3" else ""
            out.append(f"{sid} {s}: sustained {num(a['figure'])} deliveries/s"
                       f"{' (generator-bound)' if a['bound'] else ''}{extra}, "
                       f"{a['complete_runs']}/{a['reports']} runs completed")
    return out


def main(argv):
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    _become_subreaper()
    atexit.register(_kill_all)

    if args.aggregate_only:
        out_dir = args.aggregate_only.resolve()
        try:
            manifest = json.loads((out_dir / "manifest.json").read_text())
        except (OSError, ValueError) as e:
            die(f"cannot read {out_dir / 'manifest.json'}: {e}")
    else:
        scenarios = [s.strip().upper() for s in args.scenarios.split(",") if s.strip()]
        servers = [s.strip().lower() for s in args.servers.split(",") if s.strip()]
        for s in scenarios:
            if s not in SCENARIOS:
                die(f"unknown scenario {s!r} (S1, S2, S3)")
        for s in servers:
            if s not in SERVERS:
                die(f"unknown server {s!r} (roomcast, node)")
        if not scenarios or not servers or args.runs < 1:
            die("need at least one scenario, one server and --runs >= 1")
        check_environment(args, servers)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out_dir = (args.out or REPO / "bench/results" / (stamp + ("-quick" if args.quick else ""))
                   ).resolve()
        out_dir.mkdir(parents=True, exist_ok=True)
        manifest = {"argv": argv, "quick": args.quick, "scenarios": scenarios,
                    "servers": servers, "runs_per_server": args.runs,
                    "server_core": args.server_core, "generator_core": args.generator_core,
                    "machine": machine_info(), "runs": []}
        if manifest["machine"]["build_type"] not in ("Release", "RelWithDebInfo"):
            print(f"run_scenarios: warning: build type {manifest['machine']['build_type']}; "
                  "benchmark a Release or RelWithDebInfo build", file=sys.stderr)
        total = len(scenarios) * args.runs * len(servers)
        done = 0
        try:
            for sid in scenarios:
                for run in range(1, args.runs + 1):
                    for server in servers:
                        done += 1
                        print(f"run_scenarios: [{done}/{total}] {sid} run {run} {server}...",
                              file=sys.stderr, flush=True)
                        entry = run_one(args, sid, run, server, out_dir)
                        manifest["runs"].append(entry)
                        (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
                        print(f"run_scenarios:   {'ok' if entry['ok'] else 'FAILED'} in "
                              f"{entry['seconds']} s" +
                              (f": {entry['error']}" if entry["error"] else ""),
                              file=sys.stderr, flush=True)
                        time.sleep(args.pause)
        finally:
            _kill_all()
            _reap_orphans()
            (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))

    if args.results:
        results_path = args.results.resolve()
    elif manifest["quick"]:
        results_path = out_dir / "RESULTS.md"
    else:
        results_path = REPO / "bench/RESULTS.md"
    # Plots beside the Markdown file; for bench/RESULTS.md, in bench/results/.
    default_results = REPO / "bench/RESULTS.md"
    plot_dir = REPO / "bench/results" if results_path == default_results else results_path.parent
    plot_dir.mkdir(parents=True, exist_ok=True)
    results_path.parent.mkdir(parents=True, exist_ok=True)
    summary, plots = write_results(out_dir, manifest, results_path, plot_dir)
    for line in summarize(summary):
        print(line)
    print(f"run_scenarios: wrote {results_path}" +
          "".join(f", {p}" for p in plots) + f"; raw reports in {out_dir}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        _kill_all()
        print("run_scenarios: interrupted; servers and generator stopped", file=sys.stderr)
        sys.exit(130)
