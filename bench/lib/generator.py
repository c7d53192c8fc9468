"""Running the load generator, roomcast-bench, against a server: its flags, a bound on how long
a healthy run takes, and one run of one server (start it, run the generator pinned to other
cores, watch the server, stop both) recorded as a manifest entry."""

import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from lib import REPO, procs, servers


def rates_flag(rates):
    return ",".join(str(r) for r in rates)


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


def generator_argv(bench, cores, flags, port, server_pids, json_path):
    return (servers.pin(cores) + [str(bench), *flags, "--url", f"ws://127.0.0.1:{port}/",
                                  *[x for pid in server_pids for x in ("--server-pid", str(pid))],
                                  "--json", str(json_path)])


def wait(gen_proc, limit_s, tick, interval=0.5):
    """Waits for the generator to exit, calling tick() between polls (to sample the servers);
    kills it and raises RunError once it has run `limit_s` seconds. Returns its exit code."""
    deadline = time.monotonic() + limit_s
    while gen_proc.poll() is None:
        if time.monotonic() > deadline:
            procs.kill_group(gen_proc, 5)
            raise procs.RunError(f"generator still running after {limit_s:.0f} s; killed")
        tick()
        try:
            gen_proc.wait(timeout=interval)
        except subprocess.TimeoutExpired:
            pass
    procs.untrack(gen_proc)
    return gen_proc.returncode


def record_exit(entry, code, gen_out, json_path):
    """Records how the generator ended in a manifest entry: its exit code, the first error
    (its last error line, or a missing report) unless one was recorded already, and "ok"."""
    entry["generator_exit"] = code
    if code != 0 and not entry["error"]:
        entry["error"] = f"generator exit {code}: {last_error_line(gen_out)}"
    if not json_path.exists():
        entry["json"] = None
        entry["error"] = entry["error"] or "no JSON report written"
    entry["ok"] = code == 0 and not entry["error"]


def run_one(args, scenario_id, run_index, server, flags, out_dir, start):
    """One run of one server: start(log_path) starts it and returns (proc, port, argv, stop)
    (stop: called at the end, after the process group was killed); then roomcast-bench with
    `flags`, pinned to args.generator_cores, reports to out_dir. The server is killed if its RSS
    passes args.max_server_rss_mib. Returns the manifest entry."""
    stem = f"{scenario_id}-run{run_index}-{server}"
    server_log = out_dir / f"{stem}.server.log"
    json_path = out_dir / f"{stem}.json"
    gen_out = out_dir / f"{stem}.generator.txt"
    entry = {"scenario": scenario_id, "run": run_index, "server": server,
             "json": json_path.name, "server_log": server_log.name, "generator_log": gen_out.name,
             "ok": False, "error": "", "started": datetime.datetime.now().isoformat(
                 timespec="seconds")}
    server_proc = None
    stop = None
    gen_proc = None
    t0 = time.monotonic()
    try:
        server_proc, port, sargv, stop = start(server_log)
        entry["server_command"] = sargv
        gen_argv = generator_argv(args.bench, args.generator_cores, flags, port,
                                  [server_proc.pid], json_path)
        entry["generator_command"] = gen_argv
        limit_s = generator_timeout(flags)
        rss_limit = args.max_server_rss_mib * 1024 * 1024
        peak_rss = 0

        def tick():
            nonlocal peak_rss
            rss = servers.rss_bytes(server_proc.pid)
            if rss is not None:
                peak_rss = max(peak_rss, rss)
                if rss > rss_limit:
                    procs.kill_group(server_proc, 0)
                    entry["error"] = (f"server RSS {rss / 2**20:.0f} MiB exceeded "
                                      f"--max-server-rss-mib {args.max_server_rss_mib}; killed")
            if server_proc.poll() is not None and not entry["error"]:
                entry["error"] = (f"server exited with status {server_proc.returncode} "
                                  "during the run")

        gen_proc = procs.spawn(gen_argv, gen_out)
        code = wait(gen_proc, limit_s, tick)
        entry["server_peak_rss_bytes"] = peak_rss
        record_exit(entry, code, gen_out, json_path)
    except procs.RunError as e:
        entry["error"] = str(e)
    finally:
        if gen_proc is not None:
            procs.kill_group(gen_proc, 5)
        if server_proc is not None:
            entry["server_exit"] = procs.kill_group(server_proc, 5)
        if stop is not None:
            stop()
        procs.reap_orphans()
        entry["seconds"] = round(time.monotonic() - t0, 1)
    return entry


# --- the options every driver takes -----------------------------------------------------

def add_arguments(parser):
    """Where things run and with what: cores, threads, binaries, the memory bound."""
    p = parser
    p.add_argument("--server-cores", "--server-core", dest="server_cores", default="0",
                   help="CPUs of the server(s), taskset -c syntax: 0, 0-3, 0,2 (default 0)")
    p.add_argument("--generator-cores", "--generator-core", dest="generator_cores",
                   default="1", help="CPUs of roomcast-bench and its worker processes "
                                     "(default 1)")
    p.add_argument("--threads", type=int, default=1,
                   help="roomcast --threads (default 1; on a many-core machine, the number "
                        "of --server-cores)")
    p.add_argument("--generator-processes", type=int, default=0,
                   help="roomcast-bench --processes (default: its own, one per 18,000 "
                        "connections); on a many-core machine, the number of --generator-cores")
    p.add_argument("--roomcast", type=Path, default=REPO / "build/src/roomcast")
    p.add_argument("--bench", type=Path, default=REPO / "build/bench/generator/roomcast-bench")
    p.add_argument("--max-server-rss-mib", type=int, default=4096,
                   help="kill a server whose RSS grows beyond this; the run is then reported "
                        "as failed")


def subset(parser, flag, text, choices):
    """The names of a comma-separated option's value (`--modes memory,sqlite-full`), in the
    order given, each one of `choices`; else parser.error() names the unknown ones."""
    names = [n for n in text.split(",") if n]
    unknown = [n for n in names if n not in choices]
    if unknown or not names:
        parser.error(f"{flag}: unknown {','.join(unknown) or '(none given)'}; choose from "
                     f"{','.join(choices)}")
    return names


def cpu_list(text):
    """The CPUs of a taskset -c list ("0-3,6")."""
    cores = set()
    for part in str(text).split(","):
        first, _, last = part.strip().partition("-")
        cores.update(range(int(first), int(last or first) + 1))
    return cores


def check_arguments(prog, args, roomcast=True):
    """Dies with a clear message unless taskset, the cores and the binaries are there."""
    from shutil import which
    if which("taskset") is None:
        procs.die(prog, "taskset not found (Debian package util-linux)")
    available = os.sched_getaffinity(0)
    chosen = {}
    for name, text in (("--server-cores", args.server_cores),
                       ("--generator-cores", args.generator_cores)):
        try:
            chosen[name] = cpu_list(text)
        except ValueError:
            procs.die(prog, f"{name} {text!r} is not a CPU list (0, 0-3, 0,2)")
        if not chosen[name] <= available:
            procs.die(prog, f"{name} {text} names CPUs not available here "
                            f"(available: {sorted(available)})")
    if chosen["--server-cores"] & chosen["--generator-cores"]:
        print(f"{prog}: warning: server and generator share cores", file=sys.stderr)
    paths = [("--bench", "bench", "load generator")] + (
        [("--roomcast", "roomcast", "roomcast binary")] if roomcast else [])
    for flag, attr, what in paths:
        path = getattr(args, attr).resolve()
        setattr(args, attr, path)
        if not (path.is_file() and os.access(path, os.X_OK)):
            procs.die(prog, f"{what} not found at {path}: build it (scripts/build build) or "
                            f"pass {flag}")


def new_output(name, quick, results):
    """A fresh directory bench/results/NAME-STAMP (-quick) for a run's raw output, and the
    report it rewrites: `results`, or with --quick a copy of it in that directory (a quick run
    never rewrites the real report)."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = REPO / "bench/results" / f"{name}-{stamp}{'-quick' if quick else ''}"
    out_dir.mkdir(parents=True, exist_ok=True)
    return out_dir, (out_dir / Path(results).name if quick else results)


def run_interleaved(prog, args, manifest, out_dir, cases):
    """Runs every case of `cases` ([(name, scenario id, roomcast-bench flags, start)], start as
    run_one() takes it) args.runs times, interleaved run by run (a, b, a, b...) so all see the
    same machine, each run recorded in the manifest (record_run()). However it ends, kills
    whatever is left and saves the manifest."""
    try:
        for run in range(1, args.runs + 1):
            for name, scenario_id, flags, start in cases:
                print(f"{prog}: run {run}, {name}", flush=True)
                record_run(prog, manifest,
                           run_one(args, scenario_id, run, name, flags, out_dir, start), out_dir)
                time.sleep(2)
    finally:
        procs.kill_all()
        procs.reap_orphans()
        (Path(out_dir) / "manifest.json").write_text(json.dumps(manifest, indent=1))


def failed_runs(prog, manifest):
    """Names every failed run of the manifest on stderr; a driver's exit status (1 if any)."""
    failed = [e for e in manifest["runs"] if not e["ok"]]
    for e in failed:
        print(f"{prog}: {e['server']} run {e['run']} failed: {e['error']}", file=sys.stderr)
    return 1 if failed else 0


def record_run(prog, manifest, entry, out_dir):
    """Adds a finished run to the manifest, saves the manifest (so an interrupted driver keeps
    what it measured) and says how the run went."""
    manifest["runs"].append(entry)
    (Path(out_dir) / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"{prog}:   {'ok' if entry['ok'] else 'FAILED'} in {entry['seconds']} s" +
          (f": {entry['error']}" if entry["error"] else ""), file=sys.stderr, flush=True)
