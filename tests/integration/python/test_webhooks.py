"""Webhooks (issue 16, item 5): roomcast POSTs signed JSON events to a real HTTP backend the
test starts (backend_support.Backend): user_joined, user_left, user_offline after a grace
period (a reload is not an offline), message_published; retried after the backend was down;
bounded, with what is dropped counted in /metrics; the chat never waits for the backend; once
per cluster; and the flags that cannot work are refused at start.
"""

import asyncio
import os
import re
import shutil
import subprocess
import tempfile
import time

from backend_support import Backend, is_event, verify
from cluster_support import (async_wait_until, cluster, http_get, metric,  # noqa: F401
                             redis_server, wait_until)
from roomcast_server import RoomcastServer, binary_path, free_port
from security_support import SECRET, make_certificate, make_token
from test_chat_support import ChatClient, is_chat, run

HOOK_SECRET = "webhook-test-secret"


def hook_flags(backend_url, *extra):
    return ["--webhook-url", backend_url, "--webhook-secret", HOOK_SECRET, *extra]


def dropped(server, reason):
    status, body = http_get(server.http_url, "/metrics", timeout=2)
    assert status == 200
    m = re.search(r'^roomcast_webhook_dropped_total\{reason="' + reason + r'"\} (\S+)$',
                  body.decode(), re.M)
    assert m, body.decode()
    return float(m.group(1))


async def token_client(server, sub, name):
    return await ChatClient.connect(server, f"/?token={make_token(sub=sub, name=name)}")


def test_events_arrive_signed_once_each_with_ids():
    with Backend() as backend, RoomcastServer(
            "--jwt-secret", SECRET, "--webhook-url", backend.url,
            "--webhook-offline-grace", "300ms",
            env={"ROOMCAST_WEBHOOK_SECRET": HOOK_SECRET}) as server:
        async def body():
            alice = await token_client(server, "u-alice", "alice")
            await alice.join("general")
            await alice.chat_roundtrip("general", "hello backend")
            await alice.send({"type": "leave_room", "room": "general"})
            await alice.close()
        run(body())
        events = backend.wait_for(lambda e: True, count=4, what="four events")
        backend.wait_for(is_event("user_offline", user_id="u-alice"), what="user_offline")
        events = backend.events()
        assert [e.type for e in events] == [
            "user_joined", "message_published", "user_left", "user_offline"], events
        for e in events:
            assert verify(e, HOOK_SECRET), e.headers
            assert not verify(e, HOOK_SECRET + "x")
            assert e.path == "/hooks/roomcast"
            assert e.headers["Content-Type"] == "application/json"
            assert e.headers["X-Roomcast-Event"] == e.type
            assert e.headers["X-Roomcast-Event-Id"] == e.json["id"]
            assert e.headers["X-Roomcast-Attempt"] == "1"
            assert e.json["node"] == "standalone"
            assert e.json["user_id"] == "u-alice"
            assert e.json["username"] == "alice"
            assert abs(e.json["time"] - time.time() * 1000) < 60_000
        assert len({e.json["id"] for e in events}) == 4
        joined, published, left, _ = events
        assert joined.json["room"] == left.json["room"] == "general"
        assert published.json["room"] == "general"
        assert published.json["seq"] == 1
        assert published.json["message"] == "hello backend"
        # The backend has them; roomcast counts each once it has read the answer.
        wait_until(lambda: metric(server, "roomcast_webhook_delivered_total") == 4, 10,
                   "four delivered")


def test_a_reload_is_not_an_offline_but_leaving_for_good_is():
    with Backend() as backend, RoomcastServer(
            "--jwt-secret", SECRET, *hook_flags(backend.url, "--webhook-offline-grace",
                                                "1500ms")) as server:
        async def body():
            first = await token_client(server, "u-bob", "bob")
            await first.join("general")
            # The page reloads: the old connection drops, a new one comes right back.
            first.abort()
            second = await token_client(server, "u-bob", "bob")
            await second.join("general")
            await second.chat_roundtrip("general", "back again")
            # Twice the grace: an offline owed for the reload would have been sent by now.
            await asyncio.sleep(3)
            assert backend.events("user_offline") == []
            await second.close()
            await asyncio.to_thread(backend.wait_for, is_event("user_offline", user_id="u-bob"))
        run(body())
        assert len(backend.events("user_offline")) == 1
        # Anonymous users have no identity to come back to: no user_offline for them.
        async def anonymous():
            c = await ChatClient.connect(server)
            await c.join("general", "guest")
            await c.close()
        run(anonymous())
        backend.wait_for(is_event("user_left", username="guest"))
        time.sleep(2)
        assert len(backend.events("user_offline")) == 1


def test_events_are_retried_until_the_backend_is_up():
    port = free_port()  # nothing listens there yet
    with RoomcastServer(*hook_flags(f"http://127.0.0.1:{port}/hooks/roomcast")) as server:
        async def body():
            c = await ChatClient.connect(server)
            await c.join("general", "carol")
            await c.chat_roundtrip("general", "while the backend is down")
        run(body())
        wait_until(lambda: (metric(server, "roomcast_webhook_retries_total") or 0) >= 1, 10,
                   "a failed attempt retried")
        assert metric(server, "roomcast_webhook_delivered_total") == 0
        with Backend(port=port) as backend:
            published = backend.wait_for(is_event("message_published"), timeout=20,
                                         what="message_published after the backend came up")
            joined = backend.wait_for(is_event("user_joined"))
            assert int(joined[0].headers["X-Roomcast-Attempt"]) >= 2
            assert verify(published[0], HOOK_SECRET)
            assert published[0].json["message"] == "while the backend is down"
            backend.wait_for(is_event("user_left"))  # run() closed the connection
            # Delivered once each, in order: the retried head did not let the next one pass.
            assert [e.type for e in backend.events()] == [
                "user_joined", "message_published", "user_left"]
            wait_until(lambda: metric(server, "roomcast_webhook_delivered_total") == 3, 10,
                       "all three delivered")
        assert dropped(server, "queue_full") == 0


def test_chat_keeps_flowing_while_the_backend_hangs_and_drops_are_counted():
    with Backend(mode="hang") as backend, RoomcastServer(
            *hook_flags(backend.url, "--webhook-queue-size", "5", "--webhook-timeout",
                        "60s")) as server:
        async def body():
            alice = await ChatClient.connect(server)
            await alice.join("general", "alice")
            await asyncio.to_thread(backend.wait_hanging)
            bob = await ChatClient.connect(server)
            await bob.join("general", "bob")
            # Every message reaches both while the one delivery in flight waits forever.
            for i in range(40):
                await alice.chat(f"m{i}")
                await bob.expect(is_chat("general", f"m{i}"))
            # In flight: alice's join; queued: 5 (the bound); the rest of 42 events dropped
            # (a message is queued for the backend just after its delivery: wait for the last).
            await async_wait_until(lambda: dropped(server, "queue_full") == 42 - 1 - 5, 10,
                                   "the events past the bound dropped")
            assert metric(server, "roomcast_webhook_queue_events") == 6
        run(body())
        assert "webhooks: queue full" in server.log()
        backend.release()
        wait_until(lambda: metric(server, "roomcast_webhook_delivered_total") == 6, 10,
                   "the queued events delivered once the backend answers")
        assert [e.type for e in backend.events()][:2] == ["user_joined", "user_joined"]


def test_a_hanging_room_holds_back_its_lane_only_and_each_room_keeps_its_order():
    rooms = [f"r{i}" for i in range(8)]
    with Backend(mode="hang", hang_if=lambda e: e.json.get("room") == "slow") as backend, \
            RoomcastServer(*hook_flags(backend.url, "--webhook-concurrency", "4",
                                       "--webhook-timeout", "60s")) as server:
        async def body():
            c = await ChatClient.connect(server)
            await c.join("slow", "gina")
            await asyncio.to_thread(backend.wait_hanging)
            for room in rooms:
                await c.join(room, "gina")
                for i in range(3):
                    await c.chat(f"{room}-{i}", room=room)
                    await c.expect(is_chat(room, f"{room}-{i}"))
            # "slow"'s lane waits on its join; the rooms hashed to the other lanes go on.
            await asyncio.to_thread(backend.wait_for, is_event("message_published"),
                                    what="a message of another room past the hanging one")
            assert backend.events("user_joined")[0].json["room"] == "slow"
            backend.release()
            await asyncio.to_thread(backend.wait_for, is_event("message_published"),
                                    count=3 * len(rooms), what="every message")
        run(body())
        for room in rooms:
            seen = [(e.type, e.json.get("seq")) for e in backend.events()
                    if e.json.get("room") == room]
            assert seen[:4] == [("user_joined", None), ("message_published", 1),
                                ("message_published", 2), ("message_published", 3)], (room, seen)
        # Every event once: the lanes share out the queue, none is sent by two.
        ids = [e.json["id"] for e in backend.events()]
        assert len(ids) == len(set(ids))


def test_a_lane_keeps_its_connection_and_a_closed_idle_one_costs_no_retry():
    with Backend(keep_alive=True, idle_timeout=0.5) as backend, RoomcastServer(
            *hook_flags(backend.url, "--webhook-concurrency", "2")) as server:
        async def body():
            c = await ChatClient.connect(server)
            await c.join("general", "hank")
            for i in range(10):
                await c.chat_roundtrip("general", f"m{i}")
            await asyncio.to_thread(backend.wait_for, is_event("message_published"), count=10)
            # The backend closes the idle connection; the next event finds it closed.
            await asyncio.sleep(1.5)
            await c.chat_roundtrip("general", "after the idle close")
            await asyncio.to_thread(backend.wait_for, is_event("message_published"), count=11)
        run(body())
        published = backend.events("message_published")
        # One room, one lane: its events came on one connection until the backend closed it.
        assert len({e.peer for e in published[:10]}) == 1, [e.peer for e in published]
        assert published[10].peer != published[0].peer
        assert [e.json["seq"] for e in published] == list(range(1, 12))
        assert all(e.headers["X-Roomcast-Attempt"] == "1" for e in published)
        assert metric(server, "roomcast_webhook_retries_total") == 0
        wait_until(lambda: metric(server, "roomcast_webhook_delivered_total") >= 12, 10,
                   "delivered")


def test_an_event_the_backend_refuses_is_dropped_without_retries():
    with Backend(mode="status", status=400) as backend, RoomcastServer(
            *hook_flags(backend.url)) as server:
        async def body():
            c = await ChatClient.connect(server)
            await c.join("general", "dave")
        run(body())  # which closes the connection: user_joined, then user_left
        backend.wait_for(is_event("user_left"))
        wait_until(lambda: dropped(server, "refused") == 2, 10, "the refused events counted")
        # Each sent once: a 400 is not retried.
        assert [e.type for e in backend.events()] == ["user_joined", "user_left"]
        assert metric(server, "roomcast_webhook_retries_total") == 0
        assert "refused by the backend with HTTP 400" in server.log()


def test_each_event_is_sent_once_per_cluster(cluster):  # noqa: F811
    with Backend() as backend:
        node1, node2 = cluster(2, *hook_flags(backend.url))

        async def body():
            alice = await ChatClient.connect(node1)
            await alice.join("general", "alice")
            bob = await ChatClient.connect(node2)
            await bob.join("general", "bob")
            await alice.chat("from node1")
            await bob.expect(is_chat("general", "from node1"))
            await bob.chat("from node2")
            await alice.expect(is_chat("general", "from node2"))
            await bob.close()
            await asyncio.to_thread(backend.wait_for, is_event("user_left", username="bob"))
        run(body())  # which closes alice's connection too
        backend.wait_for(is_event("user_left", username="alice"))
        # Every node follows the room and hears every event; give a duplicate time to show.
        time.sleep(1)
        events = backend.events()
        kinds = sorted((e.type, e.json.get("username"), e.json.get("seq")) for e in events)
        assert kinds == [("message_published", "alice", 1), ("message_published", "bob", 2),
                         ("user_joined", "alice", None), ("user_joined", "bob", None),
                         ("user_left", "alice", None), ("user_left", "bob", None)], events
        nodes = {e.json["username"]: e.json["node"] for e in events if e.type == "user_joined"}
        assert nodes["alice"] != nodes["bob"]
        assert all(verify(e, HOOK_SECRET) for e in events)


def test_user_offline_is_decided_once_for_the_cluster(cluster):  # noqa: F811
    """A user with connections on two nodes (no sticky sessions) is offline only once both
    are gone, and the cluster sends it once: neither node decides alone."""
    with Backend() as backend:
        node1, node2 = cluster(2, "--jwt-secret", SECRET,
                               *hook_flags(backend.url, "--webhook-offline-grace", "1s"))

        async def body():
            on1 = await token_client(node1, "u-erin", "erin")
            on2 = await token_client(node2, "u-erin", "erin")
            await on1.join("general")
            await on2.join("general")
            await on1.close()
            # Three times the grace: an offline decided by node1 alone would be here by now.
            await asyncio.sleep(3)
            assert backend.events("user_offline") == []
            # A reload onto node1 while the tab on node2 closes: still online.
            again = await token_client(node1, "u-erin", "erin")
            await on2.close()
            await asyncio.sleep(3)
            assert backend.events("user_offline") == []
            await again.close()
            await asyncio.to_thread(backend.wait_for, is_event("user_offline", user_id="u-erin"))
        run(body())
        # Give a second report (from the other node) time to show: there is none.
        time.sleep(3)
        offline = backend.events("user_offline")
        assert len(offline) == 1, offline
        assert verify(offline[0], HOOK_SECRET)
        assert offline[0].json["username"] == "erin"
        assert offline[0].json["node"].startswith(("node1", "node2")), offline[0].json


def test_user_offline_once_when_both_nodes_see_the_last_connection_close(cluster):  # noqa: F811
    """Both of a user's connections, on two nodes, close at once: the node whose update left
    nobody connected sends it; the other does not."""
    with Backend() as backend:
        node1, node2 = cluster(2, "--jwt-secret", SECRET,
                               *hook_flags(backend.url, "--webhook-offline-grace", "500ms"))

        async def body():
            for round_ in range(3):
                sub = f"u-frank-{round_}"
                on1 = await token_client(node1, sub, "frank")
                on2 = await token_client(node2, sub, "frank")
                await asyncio.gather(on1.close(), on2.close())
                await asyncio.to_thread(backend.wait_for, is_event("user_offline", user_id=sub))
        run(body())
        time.sleep(2)
        offline = sorted(e.json["user_id"] for e in backend.events("user_offline"))
        assert offline == ["u-frank-0", "u-frank-1", "u-frank-2"], offline


def test_an_https_backend_gets_the_events_and_an_untrusted_one_none(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_certificate(cert, key)
    tls = (str(cert), str(key))
    # Trusted through --backend-ca-file: delivered over TLS, on a kept-alive lane.
    with Backend(tls=tls, keep_alive=True) as backend, RoomcastServer(
            *hook_flags(backend.url, "--backend-ca-file", str(cert))) as server:
        async def body():
            c = await ChatClient.connect(server)
            await c.join("general", "erin")
            await c.chat_roundtrip("general", "over tls")
        run(body())
        events = backend.wait_for(is_event("user_left"), what="user_left")
        events = backend.events()
        assert [e.type for e in events] == ["user_joined", "message_published", "user_left"]
        assert all(verify(e, HOOK_SECRET) for e in events)
        assert events[1].json["message"] == "over tls"
        assert len({e.peer for e in events}) == 1, "one kept TLS connection for the room's lane"
    # The same certificate without the CA file: the system's CAs do not vouch for it, so
    # nothing is sent (the handshake fails before any byte of an event) and it is dropped.
    with Backend(tls=tls) as backend, RoomcastServer(
            *hook_flags(backend.url, "--webhook-max-attempts", "1")) as server:
        async def body():
            c = await ChatClient.connect(server)
            await c.join("general", "erin")
        run(body())
        wait_until(lambda: dropped(server, "attempts") == 2, 10, "both events dropped")
        assert backend.events() == []
        assert "certificate verify failed" in server.log(), server.log()[-2000:]


def refusal(*args):
    proc = subprocess.run([binary_path(), "--port", "0", *args], capture_output=True,
                          text=True, timeout=10)
    return proc.returncode, proc.stdout + proc.stderr


def test_flags_that_cannot_work_are_refused_at_start():
    code, out = refusal("--webhook-url", "http://127.0.0.1:9/hook")
    assert code == 1 and "--webhook-url needs --webhook-secret" in out, out
    code, out = refusal("--webhook-url", "backend:80/hook", "--webhook-secret", "s")
    assert code == 1 and "must start with http:// or https://" in out, out
    # An https:// backend's CA file must exist and be PEM certificates.
    not_pem = os.path.join(tempfile.mkdtemp(prefix="roomcast-hooks-"), "ca.pem")
    with open(not_pem, "w") as f:
        f.write("not a certificate\n")
    code, out = refusal("--webhook-url", "https://127.0.0.1:9/hook", "--webhook-secret", "s",
                        "--backend-ca-file", not_pem)
    assert code == 1 and "--webhook-url: --backend-ca-file" in out, out
    code, out = refusal("--webhook-url", "https://127.0.0.1:9/hook", "--webhook-secret", "s",
                        "--backend-ca-file", not_pem + ".missing")
    assert code != 0 and "--backend-ca-file: File does not exist" in out, out
    code, out = refusal("--webhook-url", "http://backend:99999/", "--webhook-secret", "s")
    assert code == 1 and "port must be a number" in out, out
    # From the config file like any option: the same check.
    config = os.path.join(tempfile.mkdtemp(prefix="roomcast-hooks-"), "roomcast.toml")
    with open(config, "w") as f:
        f.write('webhook-url = "http://127.0.0.1:9/hook"\n')
    code, out = refusal("--config", config)
    assert code == 1 and "--webhook-url needs --webhook-secret" in out, out
    shutil.rmtree(os.path.dirname(config))
    for flag, value in (("--webhook-queue-size", "0"), ("--webhook-max-attempts", "0"),
                        ("--webhook-concurrency", "0"), ("--webhook-concurrency", "65"),
                        ("--webhook-timeout", "0"), ("--webhook-offline-grace", "soon")):
        code, out = refusal("--webhook-url", "http://127.0.0.1:9/", "--webhook-secret", "s",
                            flag, value)
        assert code != 0 and flag in out, (flag, out)
