"""Shared helpers for test_cluster.py (cluster mode over Redis, issue 7; this module holds no
tests): a real redis-server, roomcast nodes pointed at it, a real nginx in front of them, and
``Member``, a chat client whose every message is recorded by a background reader.

* ``RedisServer`` (the harness's, redis_server.py) runs Debian's redis-server on a free
  loopback port with the settings that lose nothing, and can stop, kill and restart it on the
  same port and directory.
* ``start_nodes`` starts N ``RoomcastServer``s (roomcast_server.py, test defaults included)
  with ``--redis``, ``--node-id nodeK`` and ``--cluster-node-ttl``.
* ``Nginx`` writes a configuration of the shape docs/operations.md ("Clustering") shows: an
  upstream of the nodes, the WebSocket upgrade headers, long proxy timeouts, no buffering and
  no sticky sessions; it runs /usr/sbin/nginx in the foreground with everything (pid, logs,
  temp files) in a directory of its own.

The fixtures ``redis_server``, ``cluster`` and ``nginx_proxy`` are meant to be imported into
a test module. Every wait is bounded; logs land next to the servers' (ROOMCAST_TEST_LOGS,
/tmp/roomcast-test-logs by default).
"""

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

from redis_server import REDIS_SERVER, RedisServer
from roomcast_server import (RoomcastServer, free_port, log_dir, stop_process, tail,
                             wait_until_ready)
from test_chat_support import DEFAULT_WAIT, ChatClient

NGINX = "/usr/sbin/nginx"
NODE_TTL = 2.0  # --cluster-node-ttl of the test nodes, in seconds


# --- HTTP -------------------------------------------------------------------------------

def http_get(base_url, path, timeout=5):
    """(status, body bytes) of a GET; HTTP errors are answers, not exceptions."""
    try:
        with urllib.request.urlopen(base_url + path, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def health(server):
    """(status, parsed body) of GET /healthz, or (None, error text) if nothing answers."""
    try:
        status, body = http_get(server.http_url, "/healthz", timeout=2)
    except OSError as e:
        return None, str(e)
    try:
        return status, json.loads(body)
    except ValueError:
        return status, body.decode(errors="replace")


def metrics(server):
    """{name: value} of the unlabelled samples of GET /metrics."""
    status, body = http_get(server.http_url, "/metrics", timeout=2)
    assert status == 200, (status, body)
    out = {}
    for line in body.decode().splitlines():
        m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*) (\S+)$", line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def metric(server, name):
    """One unlabelled sample of /metrics, or None if the server does not export it."""
    return metrics(server).get(name)


def wait_until(condition, timeout, what, interval=0.05):
    """Polls `condition()` until it returns something truthy (returned) or fails the test
    after `timeout` s, naming `what` and the last value seen."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = condition()
        except (OSError, AssertionError) as e:
            last = e
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")
        time.sleep(interval)


async def async_wait_until(condition, timeout, what, interval=0.05):
    """`wait_until` for async tests: `condition` is a plain (blocking but quick) function,
    run on a thread so the test's clients keep reading meanwhile."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            last = await asyncio.to_thread(condition)
        except (OSError, AssertionError) as e:
            last = e
        else:
            if last:
                return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")
        await asyncio.sleep(interval)


# --- roomcast nodes ---------------------------------------------------------------------

def node_args(redis, index, ttl=NODE_TTL, extra=()):
    ttl_flag = f"{ttl:g}s" if float(ttl).is_integer() else f"{round(ttl * 1000)}ms"
    return ["--redis", redis.url, "--node-id", f"node{index}",
            "--cluster-node-ttl", ttl_flag, *extra]


def start_nodes(redis, count, *extra_args, ttl=NODE_TTL):
    """Starts `count` roomcast nodes (node1..nodeN) on `redis`; each is healthy (which in
    cluster mode means connected to Redis) when this returns. Stops the ones already started
    if one fails."""
    nodes = []
    try:
        for i in range(1, count + 1):
            nodes.append(RoomcastServer(*node_args(redis, i, ttl, extra_args)).start())
    except Exception:
        for n in nodes:
            n.stop()
        raise
    return nodes


def kill_node(node):
    """kill -9: the node vanishes without telling anyone (its sockets are closed by the kernel)."""
    node.signal(signal.SIGKILL)
    node.wait(timeout=10)


# --- nginx ------------------------------------------------------------------------------

NGINX_CONF = """\
# roomcast behind nginx, written by tests/integration/python/cluster_support.py
{user}worker_processes 1;
error_log {dir}/error.log info;

events {{
    worker_connections 1024;
}}

http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;

    # "Connection: upgrade" for WebSocket upgrades, "close" for plain requests.
    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}

    # Any node serves any client: no ip_hash, no sticky cookie.
    upstream roomcast {{
{servers}
    }}

    server {{
        listen 127.0.0.1:{port};

        location / {{
            proxy_pass http://roomcast;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_read_timeout 3600s;
            proxy_send_timeout 3600s;
            proxy_buffering off;
            proxy_connect_timeout 2s;
            proxy_next_upstream error timeout;
        }}
    }}
}}
"""


class Nginx:
    """nginx in the foreground, in front of `nodes` (RoomcastServer-like: .port), on a free
    loopback port. Offers ws_url/http_url like RoomcastServer, so ChatClient.connect works."""

    def __init__(self, nodes, port=None):
        self.node_ports = [n.port for n in nodes]
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="roomcast-nginx-")
        self.conf_path = os.path.join(self.dir, "nginx.conf")
        self.proc = None
        self.stderr_path = os.path.join(log_dir(), f"nginx-{self.port}-{time.time_ns()}.log")

    @property
    def ws_url(self):
        return f"ws://127.0.0.1:{self.port}"

    @property
    def http_url(self):
        return f"http://127.0.0.1:{self.port}"

    def config(self):
        servers = "\n".join(f"        server 127.0.0.1:{p};" for p in self.node_ports)
        # Run as root: nginx started by root otherwise hands its workers to "nobody", who
        # cannot enter this (0700) directory. Without root the directive would be ignored.
        user = "user root;\n" if os.geteuid() == 0 else ""
        return NGINX_CONF.format(user=user, dir=self.dir, servers=servers, port=self.port)

    def start(self, timeout=10):
        with open(self.conf_path, "w") as f:
            f.write(self.config())
        args = [NGINX, "-p", self.dir + "/", "-c", self.conf_path, "-e", f"{self.dir}/error.log",
                "-g", f"daemon off; pid {self.dir}/nginx.pid;"]
        with open(self.stderr_path, "wb") as out:
            self.proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        def proxies():  # nginx runs and reaches a node
            return http_get(self.http_url, "/healthz", timeout=1)[0] == 200

        if wait_until_ready(self.proc, proxies, timeout, "nginx", self.log):
            return self
        self.stop()
        raise RuntimeError(f"nginx did not proxy /healthz within {timeout}s: {self.log()}")

    def log(self):
        return tail(self.stderr_path, 2000) + tail(os.path.join(self.dir, "error.log"))

    def stop(self, timeout=10):
        """SIGTERM is nginx's fast shutdown: open (WebSocket) connections are cut."""
        stop_process(self.proc, signal.SIGTERM, timeout)
        if self.proc is not None:
            # Keep its error log with the servers' logs before the directory goes.
            try:
                shutil.copy(os.path.join(self.dir, "error.log"),
                            self.stderr_path.replace(".log", "-error.log"))
            except OSError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# --- fixtures ---------------------------------------------------------------------------

@pytest.fixture
def redis_server(tmp_path):
    """A fresh redis-server (AOF, appendfsync always) in tmp_path/redis."""
    if not os.path.exists(REDIS_SERVER):
        pytest.skip("redis-server is not installed (Debian: apt-get install redis-server)")
    server = RedisServer(dir=tmp_path / "redis").start()
    yield server
    server.cleanup()


@pytest.fixture
def cluster(redis_server):
    """Factory: cluster(3) starts node1..node3 on the test's redis_server and returns them;
    all are stopped (before Redis) at the end of the test."""
    started = []

    def make(count, *extra_args, ttl=NODE_TTL):
        nodes = start_nodes(redis_server, count, *extra_args, ttl=ttl)
        started.extend(nodes)
        return nodes

    yield make
    for n in started:
        n.stop()


@pytest.fixture
def nginx_proxy():
    """Factory: nginx_proxy(nodes) starts nginx in front of them; stopped at the end."""
    if not os.path.exists(NGINX):
        pytest.skip("nginx is not installed (Debian: apt-get install nginx-light)")
    started = []

    def make(nodes):
        proxy = Nginx(nodes).start()
        started.append(proxy)
        return proxy

    yield make
    for p in started:
        p.stop()


# --- clients ----------------------------------------------------------------------------

def room_entries(messages, room):
    """(seq, username, message) of every chat message of `room` among `messages`, those in
    history replies included, in arrival order."""
    out = []
    for m in messages:
        if m.get("room") != room:
            continue
        if m.get("type") == "chat_message":
            out.append((m["seq"], m["username"], m["message"]))
        elif m.get("type") == "history":
            out.extend((x["seq"], x["username"], x["message"]) for x in m["messages"])
    return out


class Member:
    """A joined ChatClient whose every incoming message is read by a background task and
    kept in `messages`, so a test can send, look back, and wait for things at any time
    without losing what arrived meanwhile. `closed` is set when the connection ends."""

    def __init__(self, client, name, server=None):
        self.client = client
        self.name = name
        self.server = server
        self.messages = []
        self.closed = None
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def join(cls, server, room, name, connect_options=None, **extra):
        """Connects to `server` (a node or the proxy), joins `room` as `name`, and starts
        recording; the welcome is consumed, the rest (history included) is recorded.
        `connect_options`: websockets.connect arguments (compression=None: no deflate)."""
        client = await ChatClient.connect(server, **(connect_options or {}))
        await client.join(room, name, **extra)
        return cls(client, name, server)

    @property
    def user_id(self):
        return self.client.user_id

    async def _read(self):
        try:
            while True:
                self.messages.append(await self.client.recv(timeout=None))
                self._changed.set()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # the connection ended (or sent something not JSON)
            self.closed = e
            self._changed.set()

    async def send(self, obj):
        await self.client.send(obj)

    async def chat(self, text, **extra):
        await self.client.chat(text, **extra)

    async def wait_for(self, pred, timeout=DEFAULT_WAIT, start=0):
        """The first recorded message at index >= start matching `pred`, waiting for it."""
        deadline = time.monotonic() + timeout
        i = start
        while True:
            while i < len(self.messages):
                if pred(self.messages[i]):
                    return self.messages[i]
                i += 1
            if self.closed is not None:
                raise AssertionError(f"{self.name}: connection ended ({self.closed!r}) "
                                     f"without a matching message; last: {self.messages[-5:]}")
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.name}: no matching message within {timeout}s; "
                                     f"last: {self.messages[-5:]}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def wait_until(self, condition, timeout=DEFAULT_WAIT, what="condition"):
        """Waits until `condition(self)` is truthy (checked at each incoming message)."""
        deadline = time.monotonic() + timeout
        while True:
            result = condition(self)
            if result:
                return result
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{self.name}: {what} not within {timeout}s; "
                                     f"last: {self.messages[-5:]}")
            if self.closed is not None:
                raise AssertionError(f"{self.name}: connection ended ({self.closed!r}) "
                                     f"before {what}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    def entries(self, room):
        return room_entries(self.messages, room)

    def of_type(self, type_, room=None):
        return [m for m in self.messages
                if m.get("type") == type_ and (room is None or m.get("room") == room)]

    async def wait_for_seq(self, room, last_seq, timeout=20):
        """Waits until a chat message of `room` with seq >= last_seq was recorded."""
        await self.wait_until(lambda me: any(s >= last_seq for s, _, _ in me.entries(room)),
                              timeout, f"seq {last_seq} in {room}")

    def latest_user_list(self, room):
        lists = self.of_type("user_list", room)
        return lists[-1]["users"] if lists else None

    async def wait_for_users(self, room, expected, timeout=DEFAULT_WAIT):
        """Waits until the latest user_list of `room` holds exactly `expected` ({id: name}),
        in any order (members on several nodes have no common join order)."""
        def ok(me):
            latest = me.latest_user_list(room)
            return latest is not None and sorted(latest, key=lambda u: u["id"]) == sorted(
                ({"id": i, "username": n} for i, n in expected.items()), key=lambda u: u["id"])
        try:
            await self.wait_until(ok, timeout, "user_list")
        except AssertionError:
            raise AssertionError(f"{self.name}: no user_list of {room} equal to {expected} "
                                 f"within {timeout}s; latest: {self.latest_user_list(room)}")

    def abort(self):
        self._reader.cancel()
        self.client.abort()

    async def close(self):
        self._reader.cancel()
        await self.client.close()
