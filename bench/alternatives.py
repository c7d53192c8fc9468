#!/usr/bin/python3
"""The chapter's exercise 1, measured: one live feed (N readers of one room, M messages/s
published by a backend through POST /api/publish) delivered four ways, side by side in one run,
interleaved run by run:

    polling    GET /api/rooms/{room}/messages?since=SEQ every --poll-interval (2 s, the chapter's)
    long-poll  GET /api/rooms/{room}/poll?since=SEQ&timeout=25s, again as soon as it answers
    sse        GET /api/rooms/{room}/events (server-sent events), one stream per reader
    websocket  a WebSocket that joins the room (Debian's python3-websockets)

Each transport gets a fresh roomcast (lib.servers: the test harness's launcher, `--api-key`)
pinned to --server-cores; the readers are asyncio clients in --reader-processes processes
pinned to --generator-cores, the publisher (keep-alive HTTP, in this process) beside them.
Every message's text carries its publish time (CLOCK_MONOTONIC, the same clock in every process
of the machine): latency is receive time minus it. HTTP readers use raw asyncio streams, so the
bytes they count are the bytes of the socket, both directions; the WebSocket reader counts what
its protocol reads and writes (frames, pings and pongs included). Figures are taken over a
window of --seconds after a warm-up: requests the readers sent, server CPU (/proc/PID/stat),
bytes, deliveries received in the window; latency and the delivered share are over the
messages published in the window.

Rewrites the generated blocks of bench/ALTERNATIVES.md (--results; a --quick run writes a copy
into its output directory) and keeps the raw figures in bench/results/alternatives-STAMP/.

    /usr/bin/python3 bench/alternatives.py                        # 200 readers, 10 msgs/s, 20 s
    /usr/bin/python3 bench/alternatives.py --readers 2000 --rate 50 --reader-processes 2
    /usr/bin/python3 bench/alternatives.py --quick                # 20 readers, 5 msgs/s, 3 s
    /usr/bin/python3 bench/alternatives.py --aggregate-only bench/results/alternatives-STAMP
"""

import argparse
import asyncio
import datetime
import json
import math
import os
import random
import shlex
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib import REPO, procs, servers  # noqa: E402
from lib.aggregate import median, read_manifest  # noqa: E402
from lib.generator import cpu_list  # noqa: E402
from lib.machine import display_command, machine_line  # noqa: E402
from lib.markdown import num, rewrite_generated, table  # noqa: E402

PROG = "alternatives"
RESULTS = REPO / "bench/ALTERNATIVES.md"
TRANSPORTS = ("polling", "long-poll", "sse", "websocket")
ROOM = "feed"
API_KEY = "alternatives-bench-key"
# The busiest reader process above this share of its core measured the load generator too.
GENERATOR_BOUND = 0.9
# Latencies are kept as counts per bucket 1 % wide (bucket b holds about 1.01**b ms; below
# 0.1 ms counts as 0.1 ms), so the processes' figures merge exactly and stay small.
BUCKET_GROWTH = 1.01
MAX_FILES_PER_PROCESS = 20_000


# --- HTTP over raw asyncio streams, every byte counted ------------------------------------

class Counted:
    """One TCP connection to the server whose bytes read and written are added to `stats`
    (a reader process's counters)."""

    def __init__(self, stats):
        self.stats = stats
        self.reader = None
        self.writer = None
        self.buffer = bytearray()

    async def open(self, port):
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)

    def close(self):
        if self.writer is not None:
            self.writer.transport.abort()
            self.writer = None

    def send(self, data):
        self.stats["bytes_out"] += len(data)
        self.writer.write(data)

    async def fill(self):
        """Reads what the socket has into the buffer; raises ConnectionError at its end."""
        data = await self.reader.read(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        self.stats["bytes_in"] += len(data)
        self.buffer += data

    async def until(self, marker):
        while (at := self.buffer.find(marker)) < 0:
            await self.fill()
        out = bytes(self.buffer[:at])
        del self.buffer[:at + len(marker)]
        return out

    async def exactly(self, n):
        while len(self.buffer) < n:
            await self.fill()
        out = bytes(self.buffer[:n])
        del self.buffer[:n]
        return out

    async def head(self):
        """The status and headers (lower-case names) of the next response."""
        lines = (await self.until(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers

    async def get(self, path, extra=""):
        """One keep-alive GET; returns (status, body). A chunked body is read too."""
        self.send(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{extra}\r\n".encode())
        self.stats["requests"] += 1
        status, headers = await self.head()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = bytearray()
            while size := int((await self.until(b"\r\n")).split(b";")[0], 16):
                body += await self.exactly(size)
                await self.until(b"\r\n")
            await self.until(b"\r\n")
            return status, bytes(body)
        return status, await self.exactly(int(headers.get("content-length", 0)))


# --- the readers (one process holds many; run as `alternatives.py --reader-process JSON`) -

def bucket(ms):
    """The latency bucket of `ms` milliseconds."""
    return round(math.log(max(ms, 0.1), BUCKET_GROWTH))


class Feed:
    """What one reader process saw: counters snapshot at the window's start and end, and the
    latencies of the messages published inside the window."""

    def __init__(self, window):
        self.t0, self.t1 = window
        self.stats = Counter()
        self.marks = {}
        self.latency = Counter()   # 0.1 ms bucket -> count, messages published in the window
        self.published_in_window = Counter()  # k -> readers that got it

    def chat(self, message, now_ns):
        """A chat_message (a dict) a reader received at now_ns."""
        fields = dict(part.split("=", 1) for part in message.get("message", "").split()
                      if "=" in part)
        sent = int(fields.get("t", 0))
        self.stats["received"] += 1
        if self.t0 is not None and self.t0 <= now_ns <= self.t1:
            self.stats["window_received"] += 1
        if self.t0 is not None and self.t0 <= sent < self.t1:
            self.latency[bucket((now_ns - sent) / 1e6)] += 1
            self.published_in_window[fields.get("k")] += 1


async def page(conn, feed, path, since):
    """One GET answered with a page of chat messages (the history's or a poll's shape): hands
    them to the feed; returns the newest seq seen."""
    status, body = await conn.get(path)
    now = time.monotonic_ns()
    if status != 200:
        raise RuntimeError(f"{path} answered {status}: {body[:200]!r}")
    answer = json.loads(body)
    for m in answer["messages"]:
        feed.chat(m, now)
        since = max(since, m["seq"])
    return since if answer["messages"] else max(since, answer["last_seq"])


async def opened(port, feed, ready):
    """A keep-alive connection of a polling reader and the room's last seq (it reads what
    comes after it), once the reader is ready."""
    conn = Counted(feed.stats)
    await conn.open(port)
    since = await page(conn, feed, f"/api/rooms/{ROOM}/messages?limit=1", 0)
    ready()
    return conn, since


async def read_polling(port, feed, ready, cfg):
    conn, since = await opened(port, feed, ready)
    interval = cfg["poll_interval"]
    # Readers poll in phases spread over the interval, as independent browsers would.
    next_at = time.monotonic() + random.uniform(0, interval)
    while True:
        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        next_at += interval
        since = await page(conn, feed, f"/api/rooms/{ROOM}/messages?since={since}&limit=1000",
                           since)


async def read_long_poll(port, feed, ready, cfg):
    conn, since = await opened(port, feed, ready)
    while True:
        since = await page(conn, feed, f"/api/rooms/{ROOM}/poll?since={since}"
                                       f"&timeout={cfg['poll_timeout']}", since)


async def read_sse(port, feed, ready, cfg):
    conn = Counted(feed.stats)
    await conn.open(port)
    conn.send(f"GET /api/rooms/{ROOM}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
              "Accept: text/event-stream\r\n\r\n".encode())
    feed.stats["requests"] += 1
    status, _headers = await conn.head()
    if status != 200:
        raise RuntimeError(f"the event stream answered {status}")
    ready()
    while True:
        event = await conn.until(b"\n\n")
        now = time.monotonic_ns()
        kind, data = None, None
        for line in event.split(b"\n"):
            if line.startswith(b"event:"):
                kind = line[6:].strip()
            elif line.startswith(b"data:"):
                data = line[5:].strip()
        if kind == b"chat_message" and data:
            feed.chat(json.loads(data), now)


def websocket_protocol(stats):
    """A python3-websockets client protocol that counts the bytes of its socket."""
    from websockets.legacy.client import WebSocketClientProtocol

    class Counting(WebSocketClientProtocol):
        def connection_made(self, transport):
            write = transport.write

            def counted(data):
                stats["bytes_out"] += len(data)
                write(data)
            transport.write = counted
            super().connection_made(transport)

        def data_received(self, data):
            stats["bytes_in"] += len(data)
            super().data_received(data)
    return Counting


async def read_websocket(port, feed, ready, cfg, name):
    import websockets
    ws = await websockets.connect(f"ws://127.0.0.1:{port}/", max_size=None, compression=None,
                                  create_protocol=websocket_protocol(feed.stats),
                                  open_timeout=60)
    try:
        await ws.send(json.dumps({"type": "join_room", "room": ROOM, "username": name}))
        joined = False
        async for raw in ws:
            now = time.monotonic_ns()
            m = json.loads(raw)
            if m.get("type") == "error":
                raise RuntimeError(f"join refused: {raw[:200]}")
            if not joined and m.get("type") == "user_list":
                joined = True
                ready()
            if m.get("type") == "chat_message":
                feed.chat(m, now)
        raise ConnectionError(f"closed by the server ({ws.close_code})")
    finally:
        ws.transport.abort()


async def reader_process(cfg):
    """Holds cfg["count"] readers of one transport; says "ready" on stdout once every reader
    is connected, takes the window (start and end, monotonic ns) from stdin, reports JSON."""
    feed = Feed((None, None))
    transport = cfg["transport"]
    ready_count = 0
    failures = []
    all_ready = asyncio.Event()

    def settled():
        if ready_count + len(failures) >= cfg["count"]:
            all_ready.set()

    def one_ready():
        nonlocal ready_count
        ready_count += 1
        settled()

    async def reader(i):
        try:
            if transport == "polling":
                await read_polling(cfg["port"], feed, one_ready, cfg)
            elif transport == "long-poll":
                await read_long_poll(cfg["port"], feed, one_ready, cfg)
            elif transport == "sse":
                await read_sse(cfg["port"], feed, one_ready, cfg)
            else:
                await read_websocket(cfg["port"], feed, one_ready, cfg,
                                     f"reader-{cfg['index']}-{i}")
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001  (a reader lost counts as not held)
            failures.append((time.monotonic_ns(), f"{type(e).__name__}: {e}"))
            settled()

    tasks = []
    for i in range(cfg["count"]):
        tasks.append(asyncio.create_task(reader(i)))
        if i % cfg["connect_concurrency"] == cfg["connect_concurrency"] - 1:
            await asyncio.sleep(0.05)  # a connection storm would measure the accept queue
    await all_ready.wait()
    print(json.dumps({"ready": ready_count, "failed": len(failures)}), flush=True)
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    t0, t1, end = (int(x) for x in line.split())
    feed.t0, feed.t1 = t0, t1
    for at, name in ((t0, "start"), (t1, "end")):
        await asyncio.sleep(max(0.0, (at - time.monotonic_ns()) / 1e9))
        feed.marks[name] = dict(feed.stats)
    await asyncio.sleep(max(0.0, (end - time.monotonic_ns()) / 1e9))
    held = cfg["count"] - sum(1 for at, _ in failures if at <= t1)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    start, stop = feed.marks["start"], feed.marks["end"]
    print(json.dumps({
        "readers": cfg["count"], "held": held,
        "failures": [why for _, why in failures][:5], "failed": len(failures),
        "window": {k: stop.get(k, 0) - start.get(k, 0)
                   for k in ("bytes_in", "bytes_out", "requests", "window_received")},
        "latency_buckets": {str(k): v for k, v in feed.latency.items()},
        "published_in_window_seen": dict(feed.published_in_window)}), flush=True)


# --- the publisher (the backend): POST /api/publish at --rate messages/s -----------------

async def publish(port, rate, until_ns, connections=4):
    """Publishes `rate` messages a second until until_ns over a pool of keep-alive
    connections, each text "t=<publish time, monotonic ns> k=<index>"; returns
    {k: publish time}, the refusals by status and the answers' latency buckets (the store's
    commit is in them: a stall there delays every transport's deliveries alike)."""
    sent = {}
    answered = Counter()
    errors = Counter()
    queue = asyncio.Queue()

    async def worker():
        conn = Counted(Counter())
        await conn.open(port)
        while (k := await queue.get()) is not None:
            t = time.monotonic_ns()
            body = json.dumps({"room": ROOM, "message": f"t={t} k={k}"}).encode()
            conn.send(b"POST /api/publish HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: " +
                      API_KEY.encode() + b"\r\nContent-Type: application/json\r\n"
                      b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            status, headers = await conn.head()
            await conn.exactly(int(headers.get("content-length", 0)))
            if status == 200:
                sent[k] = t
                answered[bucket((time.monotonic_ns() - t) / 1e6)] += 1
            else:
                errors[status] += 1
        conn.close()

    workers = [asyncio.create_task(worker()) for _ in range(connections)]
    start = time.monotonic()
    k = 0
    while time.monotonic_ns() < until_ns:
        queue.put_nowait(k)
        k += 1
        await asyncio.sleep(max(0.0, start + k / rate - time.monotonic()))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.wait_for(asyncio.gather(*workers), timeout=30)
    return sent, dict(errors), answered


# --- one transport, one run --------------------------------------------------------------

def spawn_readers(args, transport, port, out_dir, stem):
    """The reader processes of one run, pinned to --generator-cores, tracked."""
    per = -(-args.readers // args.reader_processes)
    children = []
    left = args.readers
    for index in range(args.reader_processes):
        count = min(per, left)
        left -= count
        if count <= 0:
            break
        cfg = {"transport": transport, "port": port, "count": count, "index": index,
               "poll_interval": args.poll_interval, "poll_timeout": args.poll_timeout,
               "connect_concurrency": args.connect_concurrency}
        argv = servers.pin(args.generator_cores) + [sys.executable, __file__,
                                                    "--reader-process", json.dumps(cfg)]
        err = open(out_dir / f"{stem}.readers{index}.log", "wb")
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=err, start_new_session=True, cwd=REPO, text=True)
        err.close()
        children.append(procs.track(proc))
    return children


def read_line(proc, what, timeout_s):
    """The next JSON line a reader process writes, within timeout_s."""
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    if not sel.select(timeout_s):
        raise procs.RunError(f"a reader process wrote nothing for {timeout_s:.0f} s ({what})")
    line = proc.stdout.readline()
    if not line:
        raise procs.RunError(f"a reader process ended early ({what}, exit {proc.wait()})")
    return json.loads(line)


def run_transport(args, transport, run, out_dir):
    stem = f"run{run}-{transport}"
    entry = {"transport": transport, "run": run, "ok": False, "error": "",
             "server_log": f"{stem}.server.log"}
    server = None
    children = []
    try:
        server = servers.start_roomcast(args.roomcast, args.server_cores,
                                        out_dir / entry["server_log"], "--threads",
                                        str(args.threads), "--log-level", "warn",
                                        "--api-key", API_KEY, *args.server_flag)
        entry["server_command"] = server.argv
        children = spawn_readers(args, transport, server.port, out_dir, stem)
        connect_bound = 30 + args.readers / 200
        ready = [read_line(c, "connecting", connect_bound) for c in children]
        entry["connected"] = sum(r["ready"] for r in ready)
        # The publisher starts now: the warm-up carries traffic, the window is steady.
        now = time.monotonic_ns()
        t0 = now + int(args.warmup * 1e9)
        t1 = t0 + int(args.seconds * 1e9)
        drain = max(args.poll_interval, 1.0) + 1.5
        end = t1 + int(drain * 1e9)
        for c in children:
            c.stdin.write(f"{t0} {t1} {end}\n")
            c.stdin.flush()

        async def publish_and_sample():
            sampled = {}

            async def sample():
                for at, name in ((t0, "start"), (t1, "end")):
                    await asyncio.sleep(max(0.0, (at - time.monotonic_ns()) / 1e9))
                    sampled[name] = {
                        "server": servers.cpu_seconds(server.proc.pid),
                        "readers": [servers.cpu_seconds(c.pid) for c in children],
                        "publisher": time.process_time(), "at": time.monotonic_ns()}
            sent, errors, answered = (await asyncio.gather(
                publish(server.port, args.rate, t1), sample()))[0]
            return sent, errors, answered, sampled

        sent, errors, answered, sampled = asyncio.run(publish_and_sample())
        reports = [read_line(c, "reporting", drain + 30 + args.readers / 500) for c in children]
        for c in children:
            c.wait(timeout=10)
        window = (sampled["end"]["at"] - sampled["start"]["at"]) / 1e9
        in_window = [k for k, t in sent.items() if t0 <= t < t1]
        latency = Counter()
        seen = Counter()
        totals = Counter()
        for r in reports:
            latency.update({int(k): v for k, v in r["latency_buckets"].items()})
            seen.update(r["published_in_window_seen"])
            totals.update(r["window"])
        reader_cpu = [(b - a) / window for a, b in zip(sampled["start"]["readers"],
                                                       sampled["end"]["readers"])
                      if a is not None and b is not None]
        entry.update({
            "ok": True, "window_seconds": window, "readers": args.readers,
            "held": sum(r["held"] for r in reports),
            "reader_failures": [f for r in reports for f in r["failures"]][:5],
            "published": len(sent), "published_in_window": len(in_window),
            "publish_errors": errors,
            "publish_buckets": {str(k): v for k, v in sorted(answered.items())},
            "expected": len(in_window) * args.readers,
            "delivered": sum(seen[str(k)] for k in in_window),
            "received_in_window": totals["window_received"],
            "bytes_in": totals["bytes_in"], "bytes_out": totals["bytes_out"],
            "requests": totals["requests"],
            "server_cpu_seconds": sampled["end"]["server"] - sampled["start"]["server"],
            "reader_cpu_shares": reader_cpu,
            "publisher_cpu_share": (sampled["end"]["publisher"] -
                                    sampled["start"]["publisher"]) / window,
            "latency_buckets": {str(k): v for k, v in sorted(latency.items())}})
    except (procs.RunError, OSError, ValueError, KeyError) as e:
        entry["error"] = f"{type(e).__name__}: {e}"
    finally:
        for c in children:
            procs.kill_group(c, 2)
        if server is not None:
            entry["server_exit"] = procs.kill_group(server.proc, 5)
            server.stop()
        procs.reap_orphans()
    return entry


# --- figures and the report --------------------------------------------------------------

def percentile(buckets, p):
    """The p-th percentile (ms) of {bucket: count} latencies."""
    total = sum(buckets.values())
    if not total:
        return None
    rank = p / 100 * total
    acc = 0
    for k in sorted(buckets, key=int):
        acc += buckets[k]
        if acc >= rank:
            return BUCKET_GROWTH ** int(k)
    return None


def figures(e):
    """One run's figures, per delivery (deliveries received in the window)."""
    if not e.get("ok"):
        return None
    got = e["received_in_window"]
    per = (lambda x: x / got) if got else (lambda _x: None)
    return {"rps": e["requests"] / e["window_seconds"],
            "us": per(e["server_cpu_seconds"] * 1e6),
            "cpu": e["server_cpu_seconds"] / e["window_seconds"],
            "bytes": per(e["bytes_in"] + e["bytes_out"]), "bytes_in": per(e["bytes_in"]),
            "bytes_out": per(e["bytes_out"]),
            "p50": percentile(e["latency_buckets"], 50),
            "p99": percentile(e["latency_buckets"], 99),
            "share": e["delivered"] / e["expected"] if e["expected"] else None,
            "dps": got / e["window_seconds"], "held": e["held"],
            "gen": max(e["reader_cpu_shares"] or [0]), "pub": e["publisher_cpu_share"],
            "pub_p50": percentile(e.get("publish_buckets", {}), 50),
            "pub_p99": percentile(e.get("publish_buckets", {}), 99)}


def aggregate(manifest):
    by = {}
    for e in manifest["runs"]:
        by.setdefault(e["transport"], []).append(figures(e))
    out = {}
    for transport in manifest["transports"]:
        runs = [f for f in by.get(transport, []) if f]
        out[transport] = ({k: median([f[k] for f in runs]) for k in runs[0]} if runs else None)
        if out[transport]:
            out[transport]["runs"] = len(runs)
            out[transport]["bound"] = any(f["gen"] > GENERATOR_BOUND for f in runs)
    return out


def report_blocks(manifest, out_dir):
    cfg = manifest["config"]
    agg = aggregate(manifest)
    ws = agg.get("websocket")
    rows = []
    for transport, f in agg.items():
        if f is None:
            rows.append([transport] + ["failed"] + ["n/a"] * 9)
            continue

        def vs(key):
            if not ws or not ws.get(key) or f.get(key) is None or transport == "websocket":
                return ""
            return f" ({f[key] / ws[key]:.1f}x)"
        rows.append([
            f"**{transport}**", f"{f['held']:,.0f} of {cfg['readers']:,}", num(f["rps"], 1),
            num(f["dps"], 0), num(f["us"], 1) + vs("us"), num(f["cpu"] * 100, 1, " %"),
            f"{num(f['bytes'], 0)}{vs('bytes')} ({num(f['bytes_in'], 0)} in / "
            f"{num(f['bytes_out'], 0)} out)",
            f"{num(f['p50'], 1)} / {num(f['p99'], 1)}", num(f["share"] and 100 * f["share"], 1,
                                                           " %"),
            num(f["gen"] * 100, 0, " %") + (" **generator-bound**" if f["bound"] else ""),
            num(f["pub"] * 100, 1, " %")])
    header = ["transport", "readers held", "reader HTTP requests/s", "deliveries/s",
              "server CPU us / delivery (x WebSocket)", "server CPU",
              "bytes on the wire / delivery (x WebSocket)", "latency p50 / p99 ms",
              "delivered", "busiest reader process (CPU of its core)", "publisher CPU"]
    notes = []
    for e in manifest["runs"]:
        if e.get("error"):
            notes.append(f"- {e['transport']}, run {e['run']}: {e['error']}")
        for why in e.get("reader_failures", []):
            notes.append(f"- {e['transport']}, run {e['run']}: a reader failed: {why}")
        if e.get("publish_errors"):
            notes.append(f"- {e['transport']}, run {e['run']}: publish refused: "
                         f"{e['publish_errors']}")
    setup = [
        f"{cfg['readers']:,} readers of one room, {cfg['rate']:g} messages/s published through "
        f"`POST /api/publish` (one backend, a pool of 4 keep-alive connections), "
        f"{cfg['seconds']:g} s measured per transport after a {cfg['warmup']:g} s warm-up; "
        f"polling every {cfg['poll_interval']:g} s, long-polls of {cfg['poll_timeout']}. "
        f"Server `--threads {cfg['threads']}` on core(s) {cfg['server_cores']}, readers in "
        f"{cfg['reader_processes']} process(es) and the publisher on core(s) "
        f"{cfg['generator_cores']}; a fresh server per transport; {cfg['runs']} run(s), the "
        f"transports interleaved in each, medians shown. Generated by "
        f"`bench/alternatives.py` from `{out_dir.relative_to(REPO) if out_dir.is_relative_to(REPO) else out_dir}`.",
        "", manifest["machine"], "",
        "Command: `/usr/bin/python3 " + shlex.join(["bench/alternatives.py", *manifest["argv"]])
        + "`", "", "Server: `" + manifest.get("server_command", "") + "`"]
    lines = table(header, rows)
    lines += ["", "Per delivery: divided by the chat messages the readers received in the "
              "window. Bytes: both directions, counted by the readers on their sockets "
              "(HTTP heads, bodies, WebSocket frames). Requests: what the readers sent "
              "(the publisher's POSTs, the same for every transport, are not counted; its "
              "messages are in the server's CPU). x WebSocket: the ratio to the WebSocket "
              "row of the same run(s)."]
    per_run = []
    for e in manifest["runs"]:
        f = figures(e)
        per_run.append([e["transport"], e["run"]] + (["failed"] * 5 if f is None else [
            num(f["us"], 1), num(f["bytes"], 0), f"{num(f['p50'], 1)} / {num(f['p99'], 1)}",
            f"{num(f['pub_p50'], 1)} / {num(f['pub_p99'], 1)}", num(f["gen"] * 100, 0, " %")]))
    lines += ["", "Run by run, in the order run (a publish answer comes once the message is "
              "committed to the history store and delivered on the server: a slow one delays "
              "that message for every transport alike):", "",
              *table(["transport", "run", "server CPU us / delivery", "bytes / delivery",
                      "latency p50 / p99 ms", "publish answer p50 / p99 ms",
                      "busiest reader process"], per_run)]
    if notes:
        lines += ["", "Notes:", "", *notes]
    block = manifest.get("block", "alternatives")
    return {f"{block}-setup": setup, block: lines}, agg


def write(manifest, out_dir, results_path):
    blocks, agg = report_blocks(manifest, out_dir)
    rewrite_generated(results_path, blocks, template=RESULTS)
    return blocks, agg


# --- the command line --------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--readers", type=int, default=200, help="N: readers of the room (200)")
    p.add_argument("--rate", type=float, default=10, help="M: messages published a second (10)")
    p.add_argument("--seconds", type=float, default=20, help="measured window per transport")
    p.add_argument("--warmup", type=float, default=3,
                   help="seconds of publishing before the window opens (3)")
    p.add_argument("--runs", type=int, default=1, help="runs; the transports interleave in each")
    p.add_argument("--transports", default=",".join(TRANSPORTS),
                   help=f"comma-separated subset of {','.join(TRANSPORTS)}, in this order")
    p.add_argument("--poll-interval", type=float, default=2.0,
                   help="seconds between a polling reader's requests (2, the chapter's)")
    p.add_argument("--poll-timeout", default="25s", help="the long-polls' timeout (25s)")
    p.add_argument("--reader-processes", type=int, default=0,
                   help="processes holding the readers (default: one per 10,000 readers; a "
                        "process may hold at most 20,000 files)")
    p.add_argument("--connect-concurrency", type=int, default=100,
                   help="readers a process starts at once, 50 ms apart (100)")
    p.add_argument("--server-cores", default="0", help="taskset -c CPUs of the server (0)")
    p.add_argument("--generator-cores", default="1",
                   help="CPUs of the readers and the publisher (1)")
    p.add_argument("--threads", type=int, default=1, help="roomcast --threads (1)")
    p.add_argument("--server-flag", action="append", default=[], metavar="FLAG",
                   help="one more roomcast argument (repeat: --server-flag=--history-store "
                        "--server-flag=memory)")
    p.add_argument("--roomcast", type=Path, default=REPO / "build/src/roomcast")
    p.add_argument("--quick", action="store_true",
                   help="20 readers, 5 msgs/s, 3 s a transport: checks the driver")
    p.add_argument("--out", type=Path, help="output directory (default "
                   "bench/results/alternatives-STAMP)")
    p.add_argument("--results", type=Path, default=RESULTS,
                   help="the report whose generated blocks are rewritten (default "
                        "bench/ALTERNATIVES.md; with --quick, a copy in the output directory)")
    p.add_argument("--block", default="alternatives",
                   help="the generated blocks to rewrite: BLOCK-setup and BLOCK (default "
                        "alternatives; bench/ALTERNATIVES.md also has alternatives-quiet, "
                        "for --rate 1)")
    p.add_argument("--aggregate-only", type=Path, metavar="DIR",
                   help="run nothing: rewrite the tables from DIR/manifest.json")
    p.add_argument("--reader-process", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.readers, args.rate, args.seconds, args.warmup = 20, 5, 3, 1
    args.transports = [t for t in args.transports.split(",") if t]
    unknown = [t for t in args.transports if t not in TRANSPORTS]
    if unknown or not args.transports:
        p.error(f"--transports: unknown {','.join(unknown) or '(none given)'}; choose from "
                f"{','.join(TRANSPORTS)}")
    for name in ("readers", "runs"):
        if getattr(args, name) < 1:
            p.error(f"--{name} must be at least 1")
    for name in ("rate", "seconds", "poll_interval"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be above 0")
    if args.warmup < 0:
        p.error("--warmup must not be negative")
    if args.reader_processes < 0:
        p.error("--reader-processes must not be negative")
    if args.reader_processes == 0:
        args.reader_processes = -(-args.readers // 10_000)
    if -(-args.readers // args.reader_processes) > MAX_FILES_PER_PROCESS - 100:
        p.error(f"{args.readers} readers in {args.reader_processes} process(es) is more "
                f"than {MAX_FILES_PER_PROCESS - 100:,} sockets a process; raise "
                "--reader-processes")
    for name in ("server_cores", "generator_cores"):
        try:
            cpu_list(getattr(args, name))
        except ValueError:
            p.error(f"--{name.replace('_', '-')} {getattr(args, name)!r} is not a CPU list")
    return args


def main(argv):
    args = parse_args(argv)
    if args.reader_process:
        asyncio.run(reader_process(json.loads(args.reader_process)))
        return 0
    procs.install(PROG)
    if args.aggregate_only:
        out_dir = args.aggregate_only.resolve()
        manifest = read_manifest(PROG, out_dir)
        blocks, _agg = write(manifest, out_dir, args.results)
        print("\n".join(blocks[manifest.get("block", "alternatives")]))
        print(f"{PROG}: wrote {args.results}")
        return 0
    if not (args.roomcast.is_file() and os.access(args.roomcast, os.X_OK)):
        procs.die(PROG, f"roomcast binary not found at {args.roomcast}: build it "
                        "(scripts/build build) or pass --roomcast")
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = (args.out or REPO / "bench/results" /
               f"alternatives-{stamp}{'-quick' if args.quick else ''}").resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    results_path = out_dir / args.results.name if args.quick else args.results
    manifest = {"argv": argv, "machine": machine_line(), "transports": args.transports,
                "block": args.block,
                "config": {k: getattr(args, k) for k in (
                    "readers", "rate", "seconds", "warmup", "runs", "poll_interval",
                    "poll_timeout", "reader_processes", "server_cores", "generator_cores",
                    "threads")}, "runs": []}
    # The publisher runs here, beside the readers.
    os.sched_setaffinity(0, cpu_list(args.generator_cores))
    failed = 0
    try:
        for run in range(1, args.runs + 1):
            for transport in args.transports:
                print(f"{PROG}: run {run}, {transport}", flush=True)
                entry = run_transport(args, transport, run, out_dir)
                if entry.get("server_command"):
                    manifest["server_command"] = display_command(entry.pop("server_command"))
                manifest["runs"].append(entry)
                (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1))
                f = figures(entry)
                if f is None:
                    failed += 1
                    print(f"{PROG}:   FAILED: {entry['error']}", file=sys.stderr, flush=True)
                else:
                    print(f"{PROG}:   held {f['held']}, {f['rps']:.1f} req/s, "
                          f"{num(f['us'], 1)} us/delivery, {num(f['bytes'], 0)} B/delivery, "
                          f"p50 {num(f['p50'], 1)} p99 {num(f['p99'], 1)} ms, delivered "
                          f"{num(f['share'] and 100 * f['share'], 1)} %", flush=True)
                time.sleep(1)
    finally:
        procs.kill_all()
        procs.reap_orphans()
    blocks, _agg = write(manifest, out_dir, results_path)
    print("\n".join(blocks[args.block]))
    print(f"{PROG}: wrote {results_path}; raw figures in {out_dir}")
    return 1 if failed else 0


if __name__ == "__main__":
    procs.run_main(PROG, main, what="server and readers")
