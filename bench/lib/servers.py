"""Servers for the bench drivers, pinned to cores and tracked by lib.procs: roomcast and
redis-server through the test harness's launchers (RoomcastServer, RedisServer: the same
flags and health checks as the tests), the Node baseline, and what /proc says about them."""

import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from lib import REPO, procs
from redis_server import RedisServer
from roomcast_server import RoomcastServer

NODE_BASELINE = REPO / "bench/baselines/node-chat-server.js"
UWS_BASELINE = REPO / "bench/baselines/uws-chat-server.js"


def pin(cores):
    """The taskset prefix that runs a command on `cores` ("0", "2-7", "0,2")."""
    return ["taskset", "-c", str(cores)]


def _in_use(log_path):
    text = Path(log_path).read_text(errors="replace")[-2000:]
    return "EADDRINUSE" in text or "in use" in text, text


def start_roomcast(binary, cores, log_path, *flags, port=None, ready=None, timeout_s=15):
    """roomcast (test-default flags: rate limits off) on `cores`, in its own session, on a free
    port (tried again if it was taken meanwhile) or on `port`; returns the started
    RoomcastServer. `ready`: when it counts as started (default: /healthz answers 200). Its
    history goes to a temporary directory, removed by stop()."""
    last = ""
    for _attempt in range(3):
        server = RoomcastServer(*flags, binary=binary, prefix=pin(cores), port=port,
                                log_path=str(log_path), start_timeout=timeout_s,
                                new_session=True, ready=ready)
        try:
            server.start()
        except RuntimeError as e:
            if server.proc is not None:
                procs.kill_group(server.proc, 5)
            server.stop()
            in_use, last = _in_use(log_path)
            if not in_use or port is not None:
                raise procs.RunError(f"roomcast did not become healthy on /healthz within "
                                     f"{timeout_s} s: {e}") from None
            continue
        procs.track(server.proc)
        return server
    raise procs.RunError(f"roomcast found no free port; log tail:\n{last}")


def start_node_baseline(node, cores, log_path, timeout_s=15, script=NODE_BASELINE):
    """The Node baseline (bench/baselines/node-chat-server.js; or `script`, such as
    UWS_BASELINE) on `cores` and a free port; returns (proc, port, argv)."""
    from roomcast_server import free_port
    last = ""
    for _attempt in range(3):
        port = free_port()
        argv = pin(cores) + [str(node), str(script), "--host", "127.0.0.1",
                             "--port", str(port)]
        proc = procs.spawn(argv, log_path)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and proc.poll() is None:
            if healthy(port):
                return proc, port, argv
            time.sleep(0.1)
        code = procs.kill_group(proc, 5)
        in_use, last = _in_use(log_path)
        if code is None or not in_use:
            break
    raise procs.RunError(f"node did not become healthy on /healthz within {timeout_s} s; "
                         f"log tail:\n{last}")


def start_redis(binary, cores, log_path, appendfsync="everysec"):
    """A fresh redis-server (AOF with `appendfsync`, no RDB) on `cores` and a free port, in a
    temporary directory of its own (remove_redis() removes it); tracked like every child."""
    last = ""
    for _attempt in range(3):
        redis = RedisServer(appendfsync=appendfsync, binary=binary, prefix=pin(cores),
                            log_path=str(log_path), new_session=True)
        try:
            redis.start()
        except RuntimeError as e:
            shutil.rmtree(redis.dir, ignore_errors=True)
            last = str(e)
            continue
        procs.track(redis.proc)
        return redis
    raise procs.RunError(f"redis-server did not answer PING: {last}")


def remove_redis(redis):
    """Stops a start_redis() server (if it still runs) and removes its directory; returns its
    exit status."""
    code = procs.kill_group(redis.proc, 5)
    shutil.rmtree(redis.dir, ignore_errors=True)
    return code


def healthy(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def health(port):
    """(status, body) of GET /healthz; (None, error) when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
            return r.status, r.read().decode(errors="replace")
    except Exception as e:  # noqa: BLE001  (HTTPError 503, refused, timeout...)
        return getattr(e, "code", None), str(e)


def temp_data_dir(prefix="roomcast-bench-data-"):
    return tempfile.mkdtemp(prefix=prefix)


# --- /proc ------------------------------------------------------------------------------

def rss_bytes(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_rss_mib(pid):
    """VmHWM, the peak resident set, in MiB."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def cpu_seconds(pid):
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def open_fds(pid):
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def listeners(port):
    """Listening TCP sockets on 127.0.0.1:port (one per SO_REUSEPORT node)."""
    want = f"0100007F:{port:04X}"
    n = 0
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[1] == want and parts[3] == "0A":
                    n += 1
    except OSError:
        pass
    return n


def start_nodes(binary, cores, count, log_path, flags, redis=False, timeout_s=15):
    """`count` roomcast processes sharing one free port (SO_REUSEPORT, as cluster nodes or as
    the several processes of a large run): log_path(i) and flags(i) give node i's log and flags
    (0-based). Each is started when it listens beside the ones before it and answers /healthz
    (with `redis`, when /healthz says Redis is up). Returns the RoomcastServers (tracked) and
    the port; tries another port if the first was taken."""
    from roomcast_server import free_port
    last = ""
    for _attempt in range(3):
        port = free_port()
        nodes = []
        try:
            for i in range(count):
                def ready(i=i):
                    if listeners(port) != i + 1:
                        return False
                    code, body = health(port)
                    return code == 200 and (not redis or '"up"' in body)
                nodes.append(start_roomcast(binary, cores, log_path(i), *flags(i), port=port,
                                            ready=ready, timeout_s=timeout_s))
        except procs.RunError as e:
            for n in nodes:
                procs.kill_group(n.proc, 5)
                n.stop()
            last = str(e)
            if "in use" not in last:
                break
            continue
        return nodes, port
    raise procs.RunError(f"the nodes did not all listen and answer /healthz: {last}")
