#!/usr/bin/python3
"""Webhook delivery throughput: how many events per second roomcast hands to a local backend.

A backend in this process (HTTP/1.1, keep-alive allowed, each answer after --backend-delay)
counts the message_published events it gets; roomcast (the test harness's launcher, test
defaults, --api-key) gets --messages messages through POST /api/publish spread over --rooms
rooms, sent by --publishers threads. The figure is events/s from the first event the backend
got to the last. Each configuration (--concurrency, a list; 0 means "do not pass the flag",
for a binary from before it) runs once per --repeat, interleaved.

    /usr/bin/python3 bench/webhook_throughput.py --concurrency 1,4
    /usr/bin/python3 bench/webhook_throughput.py --binary /tmp/roomcast-main --concurrency 0
"""

import argparse
import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import lib  # noqa: F401  (puts the test harness on sys.path)
from roomcast_server import RoomcastServer

API_KEY = "bench-api-key"
SECRET = "bench-webhook-secret"


class Backend:
    def __init__(self, delay_s):
        self.delay_s = delay_s
        self.lock = threading.Lock()
        self.times = []
        self.connections = 0
        backend = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self):
                super().setup()
                with backend.lock:
                    backend.connections += 1

            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if backend.delay_s:
                    time.sleep(backend.delay_s)
                if json.loads(body)["type"] == "message_published":
                    with backend.lock:
                        backend.times.append(time.monotonic())
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def publish_all(server, messages, rooms, publishers):
    host, port = server.http_url.split("//")[1].split(":")

    def worker(indices):
        conn = http.client.HTTPConnection(host, int(port), timeout=30)
        for i in indices:
            body = json.dumps({"room": f"r{i % rooms}", "message": f"m{i}"})
            conn.request("POST", "/api/publish", body,
                         {"X-API-Key": API_KEY, "Content-Type": "application/json"})
            answer = conn.getresponse()
            answer.read()
            assert answer.status == 200, answer.status
        conn.close()

    with ThreadPoolExecutor(publishers) as pool:
        list(pool.map(worker, [range(p, messages, publishers) for p in range(publishers)]))


def run_once(binary, concurrency, args):
    backend = Backend(args.backend_delay_ms / 1000)
    flags = ["--api-key", API_KEY, "--webhook-url", backend.url, "--webhook-secret", SECRET,
             "--webhook-queue-size", str(args.messages * 2)]
    if concurrency:
        flags += ["--webhook-concurrency", str(concurrency)]
    server = RoomcastServer(*flags, binary=binary).start()
    try:
        publish_all(server, args.messages, args.rooms, args.publishers)
        deadline = time.monotonic() + 300
        while len(backend.times) < args.messages and time.monotonic() < deadline:
            time.sleep(0.05)
        got = len(backend.times)
        span = backend.times[-1] - backend.times[0] if got > 1 else float("nan")
        return got, (got - 1) / span if got > 1 else 0.0, backend.connections
    finally:
        server.stop()
        backend.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", default=None, help="roomcast binary (default: the build's)")
    parser.add_argument("--concurrency", default="1,4")
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--rooms", type=int, default=16)
    parser.add_argument("--publishers", type=int, default=8)
    parser.add_argument("--backend-delay-ms", type=float, default=2.0)
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    configs = [int(c) for c in args.concurrency.split(",")]
    for r in range(args.repeat):
        for c in configs:
            got, rate, connections = run_once(args.binary, c, args)
            print(f"run {r + 1} concurrency {c or 'default (flag not passed)'}: {got} events, "
                  f"{rate:.0f} events/s, {connections} backend connections", flush=True)


if __name__ == "__main__":
    main()
