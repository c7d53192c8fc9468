"""Shared client helpers for the test_chat_*.py integration tests (this module holds no tests).

Two kinds of client talk to the server:

* ``ChatClient`` wraps a ``websockets`` (10.4, legacy API) connection: it answers pings on
  its own, and offers "wait until a message matching X arrives" helpers, since the server
  may interleave messages (notably coalesced user_list updates) that a test does not care
  about.
* The harness's raw client (rawws.py; ``rawws.AsyncRawWebSocket`` in async tests) speaks
  WebSocket by hand, for the cases a real client library refuses to produce: staying silent
  instead of answering pings.

Every wait is bounded; ``run`` bounds a whole test body.
"""

import asyncio
import json
import re
import time

import websockets

UUID_V4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")

# How long a test waits for a message the spec says must arrive.
DEFAULT_WAIT = 5.0
# How long a test listens to confirm that a message the spec forbids does not arrive.
QUIET_WINDOW = 0.3


# Connections opened by the running test; `run` drops whatever is left of them at the end,
# so a test never waits for closing handshakes it does not care about.
_OPEN = []


def run(coro, timeout=30):
    """Runs one async test body, failing it (not hanging) after `timeout` seconds."""
    async def bounded():
        try:
            return await asyncio.wait_for(coro, timeout=timeout)
        finally:
            while _OPEN:
                _OPEN.pop().transport.abort()
    return asyncio.run(bounded())


def now_ms():
    return time.time() * 1000


def assert_server_timestamp(ts):
    """A timestamp the server stamped: a number of milliseconds since the epoch, about now."""
    assert isinstance(ts, (int, float)) and not isinstance(ts, bool), ts
    assert abs(ts - now_ms()) < 60_000, f"timestamp {ts} is not close to now ({now_ms()})"


def is_type(type_, room=None):
    def pred(m):
        return m.get("type") == type_ and (room is None or m.get("room") == room)
    return pred


def is_system(room, text):
    return lambda m: (m.get("type") == "system_message" and m.get("room") == room
                      and m.get("message") == text)


def is_chat(room, text):
    return lambda m: (m.get("type") == "chat_message" and m.get("room") == room
                      and m.get("message") == text)


def users(*clients):
    """The expected user_list "users" array for these clients, in this (join) order."""
    return [{"id": c.user_id, "username": c.username} for c in clients]


class ChatClient:
    def __init__(self, ws, user_id):
        self.ws = ws
        self.user_id = user_id
        self.username = None

    @classmethod
    async def connect(cls, server, path="/", **kwargs):
        """Opens a connection and consumes the connection_established greeting."""
        ws = await websockets.connect(server.ws_url + path, open_timeout=5, close_timeout=2,
                                      max_queue=None, **kwargs)
        _OPEN.append(ws)
        greeting = json.loads(await asyncio.wait_for(ws.recv(), DEFAULT_WAIT))
        assert greeting["type"] == "connection_established", greeting
        return cls(ws, greeting["userId"])

    async def send(self, obj):
        await self.ws.send(obj if isinstance(obj, (str, bytes)) else json.dumps(obj))

    async def recv(self, timeout=DEFAULT_WAIT):
        raw = await asyncio.wait_for(self.ws.recv(), timeout)
        assert isinstance(raw, str), f"expected a text frame, got {raw!r}"
        return json.loads(raw)

    async def recv_until(self, pred, timeout=DEFAULT_WAIT):
        """Returns the first message matching `pred`, after all the messages skipped on the way."""
        skipped = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                msg = await self.recv(timeout=max(left, 0))
            except asyncio.TimeoutError:
                raise AssertionError(
                    f"no matching message within {timeout}s; got {skipped}") from None
            if pred(msg):
                return msg, skipped
            skipped.append(msg)

    async def expect(self, pred, timeout=DEFAULT_WAIT):
        msg, _ = await self.recv_until(pred, timeout)
        return msg

    async def expect_error(self, timeout=DEFAULT_WAIT, ref=None):
        """The next error, which must be shaped {"type":"error","message":str,"code":str},
        plus `field` exactly when the code is invalid_field, `retryAfterMs` (a positive whole
        number of ms) exactly when it is rate_limited, and `ref` exactly when the request had
        one (`ref`)."""
        msg = await self.expect(is_type("error"), timeout)
        extensions = {"field"} if msg.get("code") == "invalid_field" else set()
        if msg.get("code") == "rate_limited":
            extensions.add("retryAfterMs")
            wait = msg.get("retryAfterMs")
            assert isinstance(wait, int) and not isinstance(wait, bool) and wait > 0, msg
        if ref is not None:
            extensions.add("ref")
            assert msg["ref"] == ref, msg
        assert set(msg) == {"type", "message", "code"} | extensions, msg
        assert isinstance(msg["message"], str) and msg["message"].strip(), msg
        assert isinstance(msg["code"], str) and msg["code"], msg
        return msg

    async def expect_user_list(self, room, expected, timeout=DEFAULT_WAIT):
        """Waits for a user_list of `room` equal to `expected`, skipping intermediate ones."""
        seen = []

        def pred(m):
            if m.get("type") == "user_list" and m.get("room") == room:
                seen.append(m["users"])
                return m["users"] == expected
            return False

        try:
            msg = await self.expect(pred, timeout)
        except AssertionError:
            raise AssertionError(
                f"no user_list for {room} equal to {expected}; saw {seen}") from None
        assert set(msg) == {"type", "room", "users"}, msg
        return msg

    async def collect(self, duration):
        """Every message arriving within `duration` seconds."""
        out = []
        deadline = time.monotonic() + duration
        while (left := deadline - time.monotonic()) > 0:
            try:
                out.append(await self.recv(timeout=left))
            except asyncio.TimeoutError:
                break
        return out

    async def join(self, room, username=None, **extra):
        """Joins `room` and waits for the welcome; returns it."""
        msg = {"type": "join_room", "room": room, **extra}
        if username is not None:
            msg["username"] = username
        await self.send(msg)
        welcome = await self.expect(is_system(room, f"Welcome to {room}!"))
        if username is not None:
            self.username = username
        return welcome

    async def chat(self, text, **extra):
        await self.send({"type": "chat_message", "message": text, **extra})

    async def chat_roundtrip(self, room, text):
        """Sends a chat message and waits for its own copy of it in `room`; proves the
        connection still works."""
        await self.chat(text)
        return await self.expect(is_chat(room, text))

    async def close(self):
        await self.ws.close()

    def abort(self):
        """Drops the TCP connection without a closing handshake."""
        self.ws.transport.abort()


async def room_of(server, room, *names):
    """Connects one client per name and joins them all into `room`, in order; returns them
    after each has seen the user_list with everybody."""
    clients = []
    for name in names:
        c = await ChatClient.connect(server)
        await c.join(room, name)
        clients.append(c)
    for c in clients:
        await c.expect_user_list(room, users(*clients))
    return clients
