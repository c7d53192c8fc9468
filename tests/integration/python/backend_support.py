"""A real HTTP backend for the webhook tests (this module holds no tests): Python's
http.server on a loopback port, in a thread, recording every POST roomcast sends it.

``Backend`` answers each request as its ``mode`` says: "ok" (204), "status" (``status``),
or "hang" (holds the request until ``release()`` or 30 s, then answers 204); or, given a
``responder`` (the publish hook's tests), as it returns: ``responder(received)`` gives
``(status, body)`` with ``body`` a dict (sent as JSON), bytes or None, after waiting for
``received.delay`` seconds if the responder set it (bounded by HANG_LIMIT). It can start on
a port chosen in advance (to come up after roomcast has started sending to it), be stopped,
and speak https with a certificate given as ``tls=(cert, key)``. ``events()`` are the
recorded requests as ``Received`` (headers, raw body, parsed JSON); ``verify`` checks an
event's X-Roomcast-Signature against the secret. Every wait is bounded.
"""

import hashlib
import hmac
import json
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from roomcast_server import free_port

HANG_LIMIT = 30  # s: a hanging answer never outlives a test


class Received:
    def __init__(self, path, headers, body, peer=None):
        self.path = path
        self.headers = headers
        self.body = body
        self.peer = peer  # the client's (address, port): which connection brought it
        self.json = json.loads(body)
        self.delay = 0  # s: a responder may make the answer wait

    @property
    def type(self):
        return self.json["type"]

    def __repr__(self):
        return f"Received({self.json!r}, attempt={self.headers.get('X-Roomcast-Attempt')})"


def signature(secret, body):
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(event, secret):
    """Whether `event` carries the hex HMAC-SHA256 of its exact body under `secret`."""
    return hmac.compare_digest(event.headers.get("X-Roomcast-Signature", ""),
                               signature(secret, event.body))


class Backend:
    def __init__(self, port=None, mode="ok", status=204, responder=None, keep_alive=False,
                 idle_timeout=None, hang_if=None, tls=None):
        """`keep_alive`: answer in HTTP/1.1 and keep the connection for the next request
        (else HTTP/1.0: one request per connection); `idle_timeout` (s): close a kept
        connection idle this long; `hang_if`: in mode "hang", hang only the requests it is
        true of (the others are answered at once)."""
        self.port = port or free_port()
        self.responder = responder
        self.keep_alive = keep_alive
        self.idle_timeout = idle_timeout
        self.hang_if = hang_if
        self.tls = tls  # (cert, key) PEM paths: https
        self.mode = mode
        self.status = status
        self.received = []
        self.hanging = 0  # requests held now
        self._changed = threading.Condition()
        self._release = threading.Event()
        self._httpd = None
        self._thread = None

    @property
    def url(self):
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/hooks/roomcast"

    def start(self):
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if backend.keep_alive else "HTTP/1.0"
            timeout = backend.idle_timeout

            def setup(self):
                if backend.tls:
                    self.request.do_handshake()  # in this request's thread (see start)
                super().setup()

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                received = Received(self.path, dict(self.headers), body, self.client_address)
                with backend._changed:
                    backend.received.append(received)
                    backend._changed.notify_all()
                if backend.responder is not None:
                    return self.respond(received)
                if backend.mode == "hang" and (backend.hang_if is None
                                               or backend.hang_if(received)):
                    with backend._changed:
                        backend.hanging += 1
                        backend._changed.notify_all()
                    backend._release.wait(HANG_LIMIT)
                code = backend.status if backend.mode == "status" else 204
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def respond(self, received):
                status, answer = backend.responder(received)
                if received.delay:
                    time.sleep(min(received.delay, HANG_LIMIT))
                if isinstance(answer, dict):
                    answer = json.dumps(answer).encode()
                answer = answer or b""
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(answer)))
                    self.end_headers()
                    self.wfile.write(answer)
                except OSError:
                    pass  # roomcast stopped waiting (its deadline passed)

            def log_message(self, *args):
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._httpd.daemon_threads = True
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*self.tls)
            # The handshake runs in the request's thread, not in accept (a client that
            # never finishes it must not stop the server).
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True,
                                                     do_handshake_on_connect=False)
        # A client that refuses the certificate ends its handshake: nothing to report.
        self._httpd.handle_error = lambda request, address: None
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def release(self):
        """Lets hanging requests (and every later one) answer."""
        self._release.set()

    def stop(self):
        self.release()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def events(self, type_=None):
        with self._changed:
            return [e for e in self.received if type_ is None or e.type == type_]

    def wait_for(self, pred, count=1, timeout=10, what="events"):
        """The recorded events matching `pred` once there are at least `count` of them."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [e for e in self.received if pred(e)]
                if len(found) >= count:
                    return found
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{what}: {len(found)} of {count} within {timeout}s; "
                                         f"received {self.received!r}")
                self._changed.wait(left)

    def wait_hanging(self, timeout=10):
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.hanging == 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no request reached the hanging backend")
                self._changed.wait(left)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def is_event(type_, **fields):
    def pred(e):
        return e.type == type_ and all(e.json.get(k) == v for k, v in fields.items())
    return pred
