"""The Python test harness's process side: starts the real roomcast binary (and, in
redis_server.py, redis-server) on a free loopback port, and stops it. The integration tests and
the bench drivers (bench/lib) both use it; there is no other launcher.

The binary comes from $ROOMCAST_BIN (set by CTest); every test gets its own server so
tests never share state. Each server gets a fresh history directory (--data-dir) unless
the test passes one, e.g. to restart a server on the same history. Everything is bounded in
time: start-up waits at most `start_timeout` s (10 by default), stop waits at most 10 s
before SIGKILL.
"""

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))

# Flags every test server gets unless the test sets them itself (the rate limits off; why:
# tests/test_default_flags.json, which the JavaScript harness reads too).
with open(os.path.join(ROOT, "tests", "test_default_flags.json")) as _f:
    TEST_DEFAULT_FLAGS = json.load(_f)["flags"]


def with_test_defaults(extra_args):
    """`extra_args` plus each test default flag it does not set itself."""
    args = list(extra_args)
    for flag, value in TEST_DEFAULT_FLAGS.items():
        if flag not in args:
            args += [flag, value]
    return args


def binary_path():
    path = os.environ.get("ROOMCAST_BIN", os.path.join(ROOT, "build", "src", "roomcast"))
    if not os.path.exists(path):
        raise RuntimeError(f"roomcast binary not found at {path}; set ROOMCAST_BIN")
    return path


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def log_dir():
    """Where servers log: $ROOMCAST_TEST_LOGS (CTest sets it), /tmp/roomcast-test-logs else."""
    path = os.environ.get("ROOMCAST_TEST_LOGS", "/tmp/roomcast-test-logs")
    os.makedirs(path, exist_ok=True)
    return path


def tail(path, limit=4000):
    """The last `limit` characters of a log file ("" if there is none)."""
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")[-limit:]
    except (OSError, TypeError):
        return ""


def stop_process(proc, sig=signal.SIGTERM, timeout=10):
    """Sends `sig` to a process we started and waits for it, SIGKILL after `timeout` s."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def wait_until_ready(proc, ready, timeout, name, log):
    """Polls ready() (errors count as "not yet") until it holds: True; False once `timeout`
    seconds passed. Raises RuntimeError with the log's tail if `proc` exits first. Every
    launcher of the harness waits with it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited early ({proc.returncode}): {log()}")
        try:
            if ready():
                return True
        except (OSError, RuntimeError):
            pass
        time.sleep(0.05)
    return False


class RoomcastServer:
    """One running server process. Use as a context manager or call start()/stop()."""

    def __init__(self, *extra_args, port=None, env=None, data_dir=None, preexec_fn=None,
                 production_defaults=False, degraded_is_started=False, host="127.0.0.1",
                 binary=None, prefix=(), log_path=None, start_timeout=10, new_session=False,
                 ready=None):
        """`production_defaults`: run with the server's own defaults, without the test
        defaults of TEST_DEFAULT_FLAGS. `degraded_is_started`: a 503 from /healthz (cluster
        mode, Redis not reachable) counts as started. `host`: the --host value; it must
        include 127.0.0.1, where the launcher and the helpers connect.
        For the bench drivers: `binary` (default binary_path()), `prefix` (a command to run
        the server under, e.g. ["taskset", "-c", "0"]), `log_path` (default a fresh file in
        log_dir()), `new_session` (its own process group, so a driver can signal the group),
        `ready` (what "started" means instead of healthy(), e.g. for nodes sharing a port)."""
        self.host = host
        self.degraded_is_started = degraded_is_started
        self.extra_args = list(extra_args)
        self.production_defaults = production_defaults
        self.port = port or free_port()
        self.owns_data_dir = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="roomcast-data-")
        self.env = env
        self.preexec_fn = preexec_fn  # runs in the child before exec (e.g. to set rlimits)
        self.binary = binary
        self.prefix = list(prefix)
        self.log_path = log_path
        self.start_timeout = start_timeout
        self.new_session = new_session
        self.ready = ready or self.healthy
        self.proc = None
        self.argv = None

    @property
    def ws_url(self):
        return f"ws://127.0.0.1:{self.port}"

    @property
    def tls(self):
        return "--tls-cert" in self.extra_args

    @property
    def http_url(self):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def command(self):
        """The argv start() runs."""
        return (self.prefix + [str(self.binary or binary_path()), "--host", self.host,
                               "--port", str(self.port), "--data-dir", self.data_dir] +
                (self.extra_args if self.production_defaults
                 else with_test_defaults(self.extra_args)))

    def start(self):
        if self.log_path is None:
            self.log_path = os.path.join(log_dir(), f"server-{self.port}-{time.time_ns()}.log")
        self.argv = self.command()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT,
                                         env={**os.environ, **(self.env or {})},
                                         preexec_fn=self.preexec_fn,
                                         start_new_session=self.new_session)
        if wait_until_ready(self.proc, self.ready, self.start_timeout, "roomcast", self.log):
            return self
        self.stop()
        raise RuntimeError(f"roomcast did not become healthy within {self.start_timeout} s: "
                           f"{self.log()}")

    def healthy(self):
        """Whether GET /healthz answers 200 (or 503, with `degraded_is_started`)."""
        try:
            # The health probe does not check a TLS server's (test) certificate.
            context = ssl._create_unverified_context() if self.tls else None
            with urllib.request.urlopen(self.http_url + "/healthz", timeout=1,
                                        context=context) as r:
                return r.status == 200
        except urllib.error.HTTPError as e:
            return e.code == 503 and self.degraded_is_started
        except OSError:
            return False

    def log(self):
        return tail(self.log_path)

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def wait_for_log(self, text, count=1, timeout=10):
        """Waits until `text` has appeared `count` times in the server's log (e.g. the line a
        signal handler writes); fails after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            with open(self.log_path, "rb") as f:
                seen = f.read().decode(errors="replace").count(text)
            if seen >= count:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{text!r} logged {seen} times, not {count}: {self.log()}")
            time.sleep(0.05)

    def wait(self, timeout=10):
        return self.proc.wait(timeout=timeout)

    def stop(self, timeout=10):
        """SIGTERM, SIGKILL after `timeout` s; removes the data directory if it made it.
        Returns the exit status (None if it never started)."""
        stop_process(self.proc, signal.SIGTERM, timeout)
        if self.owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        return self.proc.returncode if self.proc is not None else None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
