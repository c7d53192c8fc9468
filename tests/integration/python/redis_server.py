"""The Python harness's Redis launcher: Debian's redis-server on a free loopback port, for the
cluster tests (cluster_support.py) and the cluster bench (bench/lib). No other launcher.

The settings lose nothing by default (``--appendonly yes --appendfsync always``, no RDB
snapshots); the data lives in a directory of the caller's or a fresh temporary one. The port
and the directory stay the same across stop()/kill() and start(), so a restarted server loads
the same append-only file.
"""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from roomcast_server import free_port, log_dir, stop_process, tail, wait_until_ready

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    """A redis-server on a free loopback port, its data (AOF) in `dir`. The port and the
    directory stay the same across stop()/kill() and start(), so a restart keeps the data."""

    def __init__(self, dir=None, port=None, password=None, appendfsync="always", prefix=(),
                 log_path=None, binary=None, new_session=False):
        """`appendfsync`: always (tests: every acknowledged write is on disk) or everysec (the
        cluster bench); `prefix`: a command to run it under (e.g. taskset); `binary`: default
        the redis-server on PATH; `new_session`: its own process group (bench drivers signal
        groups)."""
        self.owns_dir = dir is None
        self.dir = str(dir) if dir is not None else tempfile.mkdtemp(prefix="roomcast-redis-")
        os.makedirs(self.dir, exist_ok=True)
        self.port = port or free_port()
        self.password = password  # --requirepass
        self.appendfsync = appendfsync
        self.prefix = list(prefix)
        self.binary = binary or REDIS_SERVER
        self.new_session = new_session
        self.proc = None
        self.argv = None
        self.log_path = log_path or os.path.join(log_dir(),
                                                 f"redis-{self.port}-{time.time_ns()}.log")

    @property
    def url(self):
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}"

    def start(self, timeout=10):
        assert self.proc is None or self.proc.poll() is not None, "redis-server already runs"
        args = self.prefix + [
            str(self.binary), "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "yes", "--appendfsync", self.appendfsync,
            "--dir", self.dir, "--daemonize", "no", "--logfile", self.log_path]
        if self.password:
            args += ["--requirepass", self.password]
        self.argv = args
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.STDOUT,
                                     start_new_session=self.new_session)
        # Not -LOADING: the data is in once it answers PING.
        if wait_until_ready(self.proc, lambda: self.command("PING", timeout=1) == "PONG",
                            timeout, "redis-server", lambda: tail(self.log_path)):
            return self
        stop_process(self.proc, signal.SIGKILL)
        raise RuntimeError(f"redis-server did not answer PING within {timeout}s: "
                           f"{tail(self.log_path)}")

    def command(self, *args, timeout=5):
        """Sends one command (RESP) and returns the reply: str, int, None or a list."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as s:
            commands = ([("AUTH", self.password)] if self.password else []) + [args]
            for command in commands:
                s.sendall((f"*{len(command)}\r\n" + "".join(
                    f"${len(str(a).encode())}\r\n{a}\r\n" for a in command)).encode())
            f = s.makefile("rb")

            def reply():
                line = f.readline()
                if not line:
                    raise OSError("redis closed the connection")
                kind, rest = line[:1], line[1:].rstrip(b"\r\n").decode()
                if kind == b"+":
                    return rest
                if kind == b"-":
                    raise RuntimeError(rest)
                if kind == b":":
                    return int(rest)
                if kind == b"$":
                    n = int(rest)
                    return None if n < 0 else f.read(n + 2)[:-2].decode(errors="replace")
                if kind == b"*":
                    n = int(rest)
                    return None if n < 0 else [reply() for _ in range(n)]
                raise RuntimeError(f"unexpected reply {line!r}")
            if self.password:
                reply()  # +OK to AUTH
            return reply()

    def info(self):
        """INFO as {field: value}; {} if Redis does not answer."""
        try:
            text = self.command("INFO", timeout=2)
        except (OSError, RuntimeError):
            return {}
        out = {}
        for line in (text or "").splitlines():
            if ":" in line and not line.startswith("#"):
                k, v = line.split(":", 1)
                out[k] = v.strip()
        return out

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout=10):
        """SIGTERM: redis-server flushes the AOF and exits."""
        stop_process(self.proc, signal.SIGTERM, timeout)

    def kill(self):
        """SIGKILL: no goodbye; with appendfsync always every acknowledged write is on disk."""
        stop_process(self.proc, signal.SIGKILL)

    def freeze(self):
        """SIGSTOP: Redis keeps its connections open and answers nothing (a hung server)."""
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self):
        """SIGCONT: Redis goes on where it stopped."""
        if self.running():
            self.proc.send_signal(signal.SIGCONT)

    def restart(self, timeout=10):
        self.stop()
        return self.start(timeout)

    def cleanup(self):
        self.thaw()  # a stopped process would not act on SIGTERM
        self.stop()
        if self.owns_dir:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()
