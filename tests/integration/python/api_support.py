"""Shared helpers for the server API tests (test_api_*.py; this module holds no tests): HTTP
requests with and without the API key, through Python's own http.client."""

import http.client
import json

API_KEY = "test-api-key-0123456789abcdef"


def request(server, method, path, body=None, key=API_KEY, headers=None, raw=None, timeout=10):
    """(status, headers, parsed JSON body or the raw text) of one request on a fresh
    connection. `body` is sent as JSON; `raw` as it is."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        sent = dict(headers or {})
        if key is not None:
            sent["X-API-Key"] = key
        payload = None
        if raw is not None:
            payload = raw.encode() if isinstance(raw, str) else raw
        elif body is not None:
            payload = json.dumps(body).encode()
        if payload is not None:
            sent.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=payload, headers=sent)
        response = conn.getresponse()
        text = response.read().decode()
        try:
            parsed = json.loads(text) if text else None
        except ValueError:
            parsed = text
        return response.status, dict(response.getheaders()), parsed
    finally:
        conn.close()


def post(server, path, body=None, **kwargs):
    return request(server, "POST", path, body, **kwargs)


def get(server, path, **kwargs):
    return request(server, "GET", path, **kwargs)


def expect_error(result, status, code):
    """Asserts `result` is an API error with `status` and `code`; returns its message."""
    got_status, headers, body = result
    assert got_status == status, (got_status, body)
    assert isinstance(body, dict) and body.get("type") == "error", body
    assert body["code"] == code, body
    assert isinstance(body["message"], str) and body["message"], body
    assert headers.get("Content-Type") == "application/json", headers
    return body["message"]


class EventStreamReader:
    """A server-sent event stream read over a raw socket, as a browser's EventSource would
    (no client library): the request, the head, then events parsed line by line. Every read is
    bounded by `timeout`."""

    def __init__(self, server, path, headers=None, timeout=10, http_version="1.1"):
        """`http_version` "1.0" through a proxy: the stream comes unchunked, ended by a close."""
        import socket
        self.sock = socket.create_connection(("127.0.0.1", server.port), timeout=timeout)
        lines = [f"GET {path} HTTP/{http_version}", f"Host: 127.0.0.1:{server.port}",
                 "Accept: text/event-stream"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buffer = b""
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode().split("\r\n")
        self.status = int(status_line.split()[1])
        self.headers = {k.lower(): v.strip() for k, _, v in
                        (line.partition(":") for line in header_lines)}
        self.comments = []

    def body(self):
        """The rest of a refusal's body (the server closes or sends Content-Length)."""
        length = int(self.headers.get("content-length", "0"))
        while len(self.buffer) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                break
            self.buffer += chunk
        return json.loads(self.buffer[:length].decode())

    def next_event(self):
        """The next event as {"id", "event", "data"} (data parsed as JSON); comments are kept in
        self.comments. Raises socket.timeout, or EOFError when the server ends the stream."""
        fields = {}
        while True:
            while b"\n" not in self.buffer:
                chunk = self.sock.recv(65536)
                if not chunk:
                    raise EOFError("the server ended the stream")
                self.buffer += chunk
            line, _, self.buffer = self.buffer.partition(b"\n")
            line = line.decode()
            if line == "":
                if fields:
                    if "data" in fields:
                        fields["data"] = json.loads(fields["data"])
                    return fields
                continue
            if line.startswith(":"):
                self.comments.append(line)
                continue
            key, _, value = line.partition(":")
            fields[key] = value[1:] if value.startswith(" ") else value

    def events(self, count, event_type="chat_message"):
        """The next `count` events of `event_type`, skipping others."""
        out = []
        while len(out) < count:
            event = self.next_event()
            if event.get("event") == event_type:
                out.append(event)
        return out

    def close(self):
        self.sock.close()
