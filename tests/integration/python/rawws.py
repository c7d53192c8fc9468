"""A deliberately minimal WebSocket client over raw TCP, for RFC 6455 conformance tests.

Real client libraries refuse to send malformed frames; this one sends exactly the bytes
a test asks for. Standard library only. Every socket operation is bounded by a timeout
so a misbehaving server makes a test fail, never hang.

    ws = rawws.connect(server)                      # handshake to /echo, asserts 101
    ws.send_frame(rawws.OP_TEXT, b"hi")             # masked, FIN set, shortest length
    frame = ws.recv_frame()                         # Frame(fin, opcode, payload, ...)
    ws.send_frame(rawws.OP_TEXT, b"x", mask=False)  # protocol violation
    ws.expect_close(1002)                           # close frame with 1002, then TCP EOF

The one raw client of the Python harness: RawWebSocket (blocking), AsyncRawWebSocket (asyncio)
and the non-blocking clients of heartbeat_load_support.py share its handshake
(upgrade_request, check_upgrade) and frame code (build_frame, parse_frame).
"""

import asyncio
import base64
import hashlib
import json
import os
import socket
import struct
import time

import pytest

from roomcast_server import RoomcastServer

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3
TIMEOUT = 5.0        # default bound for any single wait on the server
EOF_TIMEOUT = 3.0    # how long the server may take to close TCP after its close frame

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA

RSV1 = 0b100
RSV2 = 0b010
RSV3 = 0b001

LEN_7 = 7     # payload length in the 7-bit field (0..125)
LEN_16 = 16   # 126 + 16-bit extended length
LEN_64 = 64   # 127 + 64-bit extended length


# --------------------------------------------------------------------------- fixtures

def server_fixture(*flags, name):
    """A module-scoped fixture named `name` running one roomcast with `flags`."""

    @pytest.fixture(scope="module", name=name)
    def _fixture():
        with RoomcastServer(*flags) as s:
            yield s

    return _fixture


@pytest.fixture(autouse=True)
def server_still_running(request):
    """Fails the test if any server it used died while it ran (import into a module)."""
    yield
    for value in request.node.funcargs.values():
        if isinstance(value, RoomcastServer) and value.proc is not None:
            code = value.proc.poll()
            if code is not None:
                pytest.fail(f"roomcast exited with status {code} during the test:\n"
                            f"{value.log()}")


# --------------------------------------------------------------------------- errors

class ServerTimeout(AssertionError):
    """The server did not send what we waited for within the time limit."""


class ConnectionClosed(AssertionError):
    """TCP ended (EOF or reset) before a complete frame/response arrived."""

    def __init__(self, message, reset=False):
        super().__init__(message)
        self.reset = reset


# --------------------------------------------------------------------------- handshake

def accept_for(key):
    """Sec-WebSocket-Accept for `key`: base64(SHA-1(key + GUID)), section 4.2.2."""
    digest = hashlib.sha1((key + GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def new_key():
    """A fresh Sec-WebSocket-Key: base64 of 16 random bytes, section 4.1."""
    return base64.b64encode(os.urandom(16)).decode("ascii")


def upgrade_headers(port, key):
    """The header fields of a valid client opening handshake (section 4.1), in order."""
    return [
        ("Host", f"127.0.0.1:{port}"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
    ]


def upgrade_request(port, key=None, path="/echo", method="GET", http_version="HTTP/1.1",
                    replace=None, omit=(), extra=()):
    """Bytes of an opening handshake request.

    replace: {header name: value} swapped in for the default field (matched
             case-insensitively; the name as given here is what goes on the wire).
    omit:    header names to leave out.
    extra:   additional (name, value) pairs appended at the end.
    """
    key = key if key is not None else new_key()
    replace = {k.lower(): (k, v) for k, v in (replace or {}).items()}
    omit = {name.lower() for name in omit}
    lines = [f"{method} {path} {http_version}"]
    for name, value in upgrade_headers(port, key):
        low = name.lower()
        if low in omit:
            continue
        if low in replace:
            name, value = replace.pop(low)
        lines.append(f"{name}: {value}")
    for name, value in list(replace.values()) + list(extra):
        lines.append(f"{name}: {value}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class HttpResponse:
    def __init__(self, head):
        text = head.decode("latin-1")
        lines = text.split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/"):
            raise AssertionError(f"not an HTTP status line: {lines[0]!r}")
        self.version = parts[0]
        self.status = int(parts[1])
        self.reason = parts[2] if len(parts) > 2 else ""
        self.headers = []
        for line in lines[1:]:
            if not line:
                continue
            name, _, value = line.partition(":")
            self.headers.append((name.strip(), value.strip()))
        self.head = head
        self.body = b""

    def header(self, name):
        """The value of header `name` (case-insensitive), several joined by ', '; or None."""
        values = [v for n, v in self.headers if n.lower() == name.lower()]
        return ", ".join(values) if values else None

    def __repr__(self):
        return f"HttpResponse({self.head.decode('latin-1')!r})"


def open_tcp(port, timeout=TIMEOUT):
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.settimeout(timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_http_response(sock, timeout=TIMEOUT, read_body=True):
    """Reads one HTTP response head (and a Content-Length body if `read_body`).

    Returns (HttpResponse, leftover bytes received after it).
    """
    deadline = time.monotonic() + timeout
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = _recv_some(sock, deadline, "the HTTP response head", partial=buf)
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    response = HttpResponse(head)
    if read_body and response.status != 101:
        length = response.header("Content-Length")
        if length is not None:
            length = int(length)
            while len(rest) < length:
                rest += _recv_some(sock, deadline, "the HTTP response body", partial=rest)
            response.body, rest = rest[:length], rest[length:]
    return response, rest


def http_exchange(port, request, timeout=TIMEOUT):
    """Sends raw request bytes on a new connection; returns (response, sock, leftover).

    The caller owns (and must close) the socket.
    """
    sock = open_tcp(port, timeout)
    try:
        sock.sendall(request)
        response, rest = read_http_response(sock, timeout)
    except BaseException:
        sock.close()
        raise
    return response, sock, rest


def check_upgrade(response, key):
    """Asserts `response` (an HttpResponse) accepts the upgrade asked for with `key`."""
    assert response.status == 101, f"handshake refused: {response!r}"
    assert response.header("Sec-WebSocket-Accept") == accept_for(key), repr(response)


def connect(server, path="/echo", timeout=TIMEOUT, extensions=()):
    """Opens a WebSocket to `server` and completes a valid handshake (asserted).

    extensions: Sec-WebSocket-Extensions values to offer, one header line each; the server's
    answer is the connection's `handshake` (an HttpResponse)."""
    if server.proc is not None and server.proc.poll() is not None:
        raise AssertionError(f"roomcast is not running (exit {server.proc.returncode}):\n"
                             f"{server.log()}")
    key = new_key()
    extra = [("Sec-WebSocket-Extensions", value) for value in extensions]
    response, sock, rest = http_exchange(
        server.port, upgrade_request(server.port, key, path, extra=extra), timeout)
    try:
        check_upgrade(response, key)
    except BaseException:
        sock.close()
        raise
    ws = RawWebSocket(sock, rest, timeout)
    ws.handshake = response
    return ws


# --------------------------------------------------------------------------- frames

def apply_mask(data, key):
    """XORs `data` with the 4-byte masking key (section 5.3)."""
    n = len(data)
    if n == 0:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def shortest_length_form(n):
    return LEN_7 if n <= 125 else LEN_16 if n <= 0xFFFF else LEN_64


def build_frame(opcode, payload=b"", fin=True, mask=True, rsv=0, length_form=None,
                mask_key=None, declared_length=None):
    """Bytes of one frame (section 5.2). Every field is under the caller's control.

    rsv:             the three reserved bits as a number 0..7 (RSV1 = 4, RSV2 = 2, RSV3 = 1).
    length_form:     LEN_7 / LEN_16 / LEN_64; default is the shortest that fits.
    mask_key:        4 bytes; default random. Ignored when mask is False.
    declared_length: length written in the header, if it should differ from len(payload).
    """
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    n = len(payload) if declared_length is None else declared_length
    form = length_form or shortest_length_form(n)
    b0 = (0x80 if fin else 0) | ((rsv & 0x7) << 4) | (opcode & 0xF)
    mask_bit = 0x80 if mask else 0
    if form == LEN_7:
        if n > 125:
            raise ValueError("7-bit length form holds at most 125")
        header = bytes([b0, mask_bit | n])
    elif form == LEN_16:
        header = bytes([b0, mask_bit | 126]) + struct.pack("!H", n)
    elif form == LEN_64:
        header = bytes([b0, mask_bit | 127]) + struct.pack("!Q", n)
    else:
        raise ValueError(f"unknown length form {form}")
    if mask:
        key = mask_key if mask_key is not None else os.urandom(4)
        assert len(key) == 4
        return header + key + apply_mask(payload, key)
    return header + payload


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    return struct.pack("!H", code) + reason


_OPCODE_NAMES = {0: "CONT", 1: "TEXT", 2: "BINARY", 8: "CLOSE", 9: "PING", 10: "PONG"}


class Frame:
    """A frame received from the server. Unpacks as (fin, opcode, payload)."""

    def __init__(self, fin, rsv, opcode, masked, length_form, payload):
        self.fin = fin
        self.rsv = rsv
        self.opcode = opcode
        self.masked = masked
        self.length_form = length_form
        self.payload = payload

    def __iter__(self):
        return iter((self.fin, self.opcode, self.payload))

    @property
    def close_code(self):
        """Status code of a close frame, or None if its payload is empty."""
        assert self.opcode == OP_CLOSE, f"not a close frame: {self!r}"
        if len(self.payload) < 2:
            return None
        return struct.unpack("!H", self.payload[:2])[0]

    @property
    def close_reason(self):
        assert self.opcode == OP_CLOSE, f"not a close frame: {self!r}"
        return self.payload[2:]

    def __repr__(self):
        name = _OPCODE_NAMES.get(self.opcode, hex(self.opcode))
        shown = self.payload[:40]
        more = "..." if len(self.payload) > 40 else ""
        return (f"Frame({name}, fin={self.fin}, rsv={self.rsv}, masked={self.masked}, "
                f"len={len(self.payload)}, payload={shown!r}{more})")


def parse_frame(buf, pos=0):
    """The frame that starts at `buf[pos:]` and the position after it, or None while `buf`
    does not hold all of it yet. Every client of this module reads frames with it."""
    if len(buf) - pos < 2:
        return None
    b0, b1 = buf[pos], buf[pos + 1]
    masked = bool(b1 & 0x80)
    n = b1 & 0x7F
    head = pos + 2
    if n == 126:
        form, head = LEN_16, pos + 4
        if len(buf) < head:
            return None
        (n,) = struct.unpack_from("!H", buf, pos + 2)
    elif n == 127:
        form, head = LEN_64, pos + 10
        if len(buf) < head:
            return None
        (n,) = struct.unpack_from("!Q", buf, pos + 2)
    else:
        form = LEN_7
    key = None
    if masked:
        if len(buf) < head + 4:
            return None
        key = bytes(buf[head:head + 4])
        head += 4
    if len(buf) < head + n:
        return None
    payload = bytes(buf[head:head + n])
    if masked:
        payload = apply_mask(payload, key)
    return Frame(bool(b0 & 0x80), (b0 >> 4) & 0x7, b0 & 0xF, masked, form, payload), head + n


def _recv_some(sock, deadline, what, partial=b""):
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        raise ServerTimeout(f"timed out waiting for {what} (had {len(partial)} bytes: "
                            f"{partial[:60]!r})")
    sock.settimeout(remaining)
    try:
        chunk = sock.recv(1 << 20)
    except socket.timeout:
        raise ServerTimeout(f"timed out waiting for {what} (had {len(partial)} bytes: "
                            f"{partial[:60]!r})") from None
    except ConnectionResetError:
        raise ConnectionClosed(f"connection reset while waiting for {what} "
                               f"(had {len(partial)} bytes)", reset=True) from None
    if not chunk:
        raise ConnectionClosed(f"server closed TCP while waiting for {what} "
                               f"(had {len(partial)} bytes: {partial[:60]!r})")
    return chunk


class RawWebSocket:
    """An open WebSocket connection, client side, with byte-level control."""

    def __init__(self, sock, buffered=b"", timeout=TIMEOUT):
        self.sock = sock
        self.buf = bytearray(buffered)
        self.timeout = timeout

    # -- sending

    def send_raw(self, data, ignore_errors=False):
        """Writes bytes as they are. With ignore_errors, a server that already hung up
        (EPIPE/ECONNRESET) is not an error: the test then checks what it sent back."""
        self.sock.settimeout(self.timeout)
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            if not ignore_errors:
                raise

    def send_frame(self, opcode, payload=b"", fin=True, mask=True, rsv=0, length_form=None,
                   mask_key=None, declared_length=None, ignore_errors=False):
        self.send_raw(build_frame(opcode, payload, fin=fin, mask=mask, rsv=rsv,
                                  length_form=length_form, mask_key=mask_key,
                                  declared_length=declared_length),
                      ignore_errors=ignore_errors)

    def send_text(self, text, **kw):
        self.send_frame(OP_TEXT, text.encode("utf-8") if isinstance(text, str) else text, **kw)

    def send_binary(self, data, **kw):
        self.send_frame(OP_BINARY, data, **kw)

    def send_close(self, code=None, reason=b"", **kw):
        self.send_frame(OP_CLOSE, close_payload(code, reason), **kw)

    def send_bytewise(self, data, delay=0.001):
        """Writes `data` one byte per send() call, pausing `delay` s between bytes."""
        self.sock.settimeout(self.timeout)
        for i in range(len(data)):
            self.sock.sendall(data[i:i + 1])
            if delay:
                time.sleep(delay)

    # -- receiving

    def _fill(self, n, deadline, what):
        while len(self.buf) < n:
            self.buf += _recv_some(self.sock, deadline, what, bytes(self.buf))

    def recv_frame(self, timeout=None):
        """The next frame from the server; raises ServerTimeout / ConnectionClosed."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        while True:
            parsed = parse_frame(self.buf)
            if parsed is not None:
                frame, used = parsed
                del self.buf[:used]
                return frame
            self.buf += _recv_some(self.sock, deadline, "a frame from the server",
                                   bytes(self.buf))

    def expect_frame(self, opcode, payload, timeout=None):
        """Asserts the next frame is a final, unmasked `opcode` frame carrying `payload`."""
        frame = self.recv_frame(timeout)
        assert frame.opcode == opcode, f"expected opcode {opcode:#x}, got {frame!r}"
        assert frame.fin, f"expected an unfragmented frame, got {frame!r}"
        assert not frame.masked, f"server frames must not be masked: {frame!r}"
        assert frame.rsv == 0, f"server set reserved bits: {frame!r}"
        assert frame.payload == payload, (
            f"payload mismatch: got {len(frame.payload)} bytes {frame.payload[:60]!r}, "
            f"expected {len(payload)} bytes {payload[:60]!r}")
        return frame

    def echo(self, opcode, payload):
        """Sends one message and asserts it comes back unchanged."""
        self.send_frame(opcode, payload)
        return self.expect_frame(opcode, payload)

    def expect_close(self, code, timeout=None, then_eof=True):
        """Asserts the next frame is an unmasked close frame with status `code`
        (None: empty payload; a tuple/set: any of these), then, with `then_eof`,
        that the server closes TCP without sending anything else."""
        try:
            frame = self.recv_frame(timeout)
        except ConnectionClosed as e:
            raise AssertionError(f"expected a close frame with code {code}, but TCP ended "
                                 f"first ({e})") from None
        except ServerTimeout as e:
            raise AssertionError(f"expected a close frame with code {code}: {e}") from None
        assert frame.opcode == OP_CLOSE, f"expected close frame with code {code}, got {frame!r}"
        assert frame.fin, f"close frame must not be fragmented: {frame!r}"
        assert not frame.masked, f"server frames must not be masked: {frame!r}"
        assert frame.rsv == 0, f"server set reserved bits: {frame!r}"
        assert len(frame.payload) != 1, f"close payload of 1 byte is malformed: {frame!r}"
        got = frame.close_code
        wanted = set(code) if isinstance(code, (tuple, set, frozenset, list)) else {code}
        assert got in wanted, (f"expected close code {sorted(wanted, key=str)}, got {got} "
                               f"(reason {frame.payload[2:]!r})")
        if then_eof:
            self.expect_eof()
        return frame

    def expect_eof(self, timeout=EOF_TIMEOUT):
        """Asserts the server closes TCP (EOF or reset) within `timeout`, sending nothing
        more."""
        if self.buf:
            raise AssertionError(f"server sent bytes after its close frame: {bytes(self.buf)!r}")
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"server did not close the TCP connection within "
                                     f"{timeout} s")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                return
            if not chunk:
                return
            raise AssertionError(f"server sent bytes after its close frame: {chunk[:60]!r}")

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# --------------------------------------------------------------------------- asyncio

class AsyncRawWebSocket:
    """The same client over asyncio streams, for async tests that need a client which never
    answers pings (real client libraries always do)."""

    def __init__(self, reader, writer, buffered=b""):
        self.reader = reader
        self.writer = writer
        self.buf = bytearray(buffered)

    @classmethod
    async def connect(cls, port, path="/", timeout=TIMEOUT):
        """Opens a WebSocket to 127.0.0.1:`port` and completes a valid handshake (asserted)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        key = new_key()
        writer.write(upgrade_request(port, key, path))
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        check_upgrade(HttpResponse(head[:-4]), key)
        return cls(reader, writer)

    def send_frame(self, opcode, payload):
        """Sends one final, masked frame (clients must mask)."""
        self.writer.write(build_frame(opcode, payload))

    def send_json(self, obj):
        self.send_frame(OP_TEXT, json.dumps(obj).encode())

    async def read_frame(self):
        """(opcode, payload) of the next frame, or None at end of stream."""
        while (parsed := parse_frame(self.buf)) is None:
            try:
                data = await self.reader.read(1 << 16)
            except ConnectionError:
                return None
            if not data:
                return None
            self.buf += data
        frame, used = parsed
        del self.buf[:used]
        return frame.opcode, frame.payload

    async def read_json(self, timeout=TIMEOUT):
        """The next text frame as JSON, skipping control frames (without answering pings)."""
        async def loop():
            while True:
                frame = await self.read_frame()
                assert frame is not None, "connection ended"
                if frame[0] == OP_TEXT:
                    return json.loads(frame[1])
        return await asyncio.wait_for(loop(), timeout)

    def close(self):
        self.writer.transport.abort()
