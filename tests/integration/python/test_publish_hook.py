"""The publish hook (issue 16, item 6; docs/api.md "Publish hook"): with --publish-hook, roomcast
asks a real HTTP backend the test starts (backend_support.Backend, Python's http.server) before
it publishes a member's chat message, a durable app event or a user's POST
/api/rooms/{room}/messages. The backend allows, denies (the sender alone gets `denied` with the
backend's reason; nothing is stored or relayed, the `id` is not spent) or rewrites the text;
a timeout, a backend down or an answer that is no verdict is decided by --publish-hook-policy.
The room's order is kept when an early message waits longer than a later one. Checked with
Python websockets clients, http.client and the server's /metrics.
"""

import asyncio
import re
import time

import pytest

from api_support import expect_error, get, request
from backend_support import Backend, verify
from cluster_support import http_get, wait_until
from roomcast_server import RoomcastServer, free_port
from security_support import SECRET, make_certificate, make_token
from test_chat_support import ChatClient, is_chat, is_type, room_of, run
from test_webhooks import refusal

HOOK_SECRET = "publish-hook-secret"
REDACTED = "[redacted]"
# Answers slower than this fail (the servers below); "hang" answers take HANG_S.
TIMEOUT = "1500ms"
HANG_S = 4
SLOW_S = 0.5  # well inside TIMEOUT: still a verdict, just later than the next one's


def text_of(question):
    """The text a question is about: a chat message's, or an app event's `text` field."""
    if question.json["type"] == "chat_message":
        return question.json["message"]
    return question.json["event"].get("text", "")


def responder(question):
    """The backend's policy, by the text's first word."""
    text = text_of(question)
    if text.startswith("deny"):
        return 200, {"result": "deny", "reason": "No spam here,\nplease"}
    if text.startswith("rewrite"):
        return 200, {"result": "allow", "message": REDACTED}
    if text.startswith("badrewrite"):
        return 200, {"result": "allow", "message": "   "}  # nothing visible: a client's is refused
    if text.startswith("garbage"):
        return 200, b"this is not json"
    if text.startswith("error"):
        return 503, {"result": "allow"}
    if text.startswith("slow"):
        question.delay = SLOW_S
    if text.startswith("hang"):
        question.delay = HANG_S
    return 200, {"result": "allow"}


@pytest.fixture(scope="module")
def backend():
    with Backend(responder=responder) as b:
        yield b


def hook_server(backend_url, policy, *extra):
    return RoomcastServer("--publish-hook", backend_url, "--publish-hook-timeout", TIMEOUT,
                          "--publish-hook-policy", policy, "--webhook-secret", HOOK_SECRET,
                          "--jwt-secret", SECRET, "--app-events", "note:durable,cursor",
                          "--threads", "2", *extra)


@pytest.fixture(scope="module")
def closed(backend):
    with hook_server(backend.url, "fail-closed") as s:
        yield s


@pytest.fixture(scope="module")
def opened(backend):
    with hook_server(backend.url, "fail-open") as s:
        yield s


def questions_about(backend, text, count=1):
    return backend.wait_for(lambda q: text_of(q) == text, count=count,
                            what=f"questions about {text!r}")


def history(server, room):
    status, _, page = get(server, f"/api/rooms/{room}/messages?limit=100", key=None)
    assert status == 200, page
    return [m["message"] for m in page["messages"]]


def hook_metric(server, outcome):
    status, body = http_get(server.http_url, "/metrics", timeout=2)
    assert status == 200
    m = re.search(r'^roomcast_publish_hook_requests_total\{outcome="' + outcome + r'"\} (\S+)$',
                  body.decode(), re.M)
    assert m, body.decode()
    return float(m.group(1))


def test_an_allowed_message_is_asked_about_signed_then_published(closed, backend):
    async def body():
        alice, bob = await room_of(closed, "allow", "alice", "bob")
        await alice.chat("hello there", room="allow", id="a-1")
        ack = await alice.expect(is_type("ack"))
        assert ack == {"type": "ack", "room": "allow", "id": "a-1", "seq": ack["seq"]}
        got = await bob.expect(is_chat("allow", "hello there"))
        assert got["seq"] == ack["seq"] and got["username"] == "alice"
        [question] = questions_about(backend, "hello there")
        assert question.json == {"room": "allow", "userId": alice.user_id, "username": "alice",
                                 "type": "chat_message", "message": "hello there", "id": "a-1"}
        assert question.headers["Content-Type"] == "application/json"
        assert verify(question, HOOK_SECRET) and not verify(question, HOOK_SECRET + "x")
        assert question.path == "/hooks/roomcast"
    run(body())
    assert history(closed, "allow") == ["hello there"]
    assert hook_metric(closed, "allow") >= 1
    # Question to verdict, a histogram of every question asked.
    _, text = http_get(closed.http_url, "/metrics", timeout=2)
    count = re.search(r"^roomcast_publish_hook_seconds_count (\S+)$", text.decode(), re.M)
    assert count and float(count.group(1)) >= 1, text.decode()


def test_a_denied_message_reaches_only_its_sender_as_an_error_and_keeps_its_id(closed, backend):
    async def body():
        alice, bob = await room_of(closed, "deny", "alice", "bob")
        await alice.chat("deny this offer", room="deny", id="d-1")
        error = await alice.expect(is_type("error"))
        # The backend's reason, on one line; the room and id say which message it was.
        assert error == {"type": "error", "code": "denied", "message": "No spam here,please",
                         "room": "deny", "id": "d-1"}, error
        # The id was not spent: the same id with an acceptable text is published.
        await alice.chat("a fine offer", room="deny", id="d-1")
        ack = await alice.expect(is_type("ack"))
        assert ack["id"] == "d-1"
        seen = await bob.collect(0.5)
        chats = [m for m in seen if m.get("type") == "chat_message"]
        assert [m["message"] for m in chats] == ["a fine offer"], seen
        assert not [m for m in seen if m.get("type") == "error"], seen
        assert chats[0]["seq"] == ack["seq"]
    run(body())
    assert history(closed, "deny") == ["a fine offer"]
    assert hook_metric(closed, "deny") >= 1


def test_an_https_hook_is_asked_over_tls_and_an_untrusted_one_fails_closed(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    make_certificate(cert, key)
    with Backend(responder=responder, tls=(str(cert), str(key))) as backend:
        with hook_server(backend.url, "fail-closed", "--backend-ca-file", str(cert)) as server:
            async def body():
                alice, bob = await room_of(server, "tls", "alice", "bob")
                await alice.chat("deny over tls", room="tls", id="t-1")
                error = await alice.expect(is_type("error"))
                assert error["code"] == "denied", error
                await alice.chat("rewrite over tls", room="tls", id="t-2")
                await bob.expect(is_chat("tls", REDACTED))
            run(body())
            [question] = questions_about(backend, "deny over tls")
            assert verify(question, HOOK_SECRET)
        # Without the CA file the system's CAs do not vouch for the certificate: no question
        # is delivered, so fail-closed refuses.
        asked = len(backend.events())
        with hook_server(backend.url, "fail-closed") as server:
            async def refused():
                alice, _ = await room_of(server, "tls", "alice", "bob")
                await alice.chat("hello over tls", room="tls", id="t-3")
                error = await alice.expect(is_type("error"))
                assert error["code"] == "unavailable", error
            run(refused())
            assert len(backend.events()) == asked
            assert "certificate verify failed" in server.log(), server.log()[-2000:]


def test_a_rewritten_message_is_delivered_and_stored_rewritten(closed, backend):
    async def body():
        alice, bob = await room_of(closed, "rewrite", "alice", "bob")
        await alice.chat("rewrite darn it", room="rewrite", id="r-1")
        mine = await alice.expect(is_chat("rewrite", REDACTED))
        ack = await alice.expect(is_type("ack"))
        theirs = await bob.expect(is_chat("rewrite", REDACTED))
        assert mine["seq"] == theirs["seq"] == ack["seq"]
        late = await ChatClient.connect(closed)
        await late.send({"type": "join_room", "room": "rewrite", "username": "carol"})
        hist = await late.expect(is_type("history"))
        assert [m["message"] for m in hist["messages"]] == [REDACTED]
    run(body())
    assert history(closed, "rewrite") == [REDACTED]
    assert hook_metric(closed, "rewrite") >= 1


@pytest.mark.parametrize("first_word", ["badrewrite", "garbage", "error", "hang"])
def test_no_verdict_is_decided_by_the_policy(closed, opened, backend, first_word):
    """A rewrite a client could not send, an answer that is no verdict, a 5xx, a timeout:
    fail-closed refuses with `unavailable`, fail-open publishes the text as sent."""
    text = f"{first_word} message"
    room = f"policy-{first_word}"

    async def body():
        c_alice, c_bob = await room_of(closed, room, "alice", "bob")
        o_alice, o_bob = await room_of(opened, room, "alice", "bob")
        await c_alice.chat(text, room=room, id="p-1")
        await o_alice.chat(text, room=room, id="p-1")
        error = await c_alice.expect(is_type("error"))
        assert error["code"] == "unavailable" and error["room"] == room and error["id"] == "p-1"
        assert "not sent" in error["message"], error
        got = await o_bob.expect(is_chat(room, text))
        ack = await o_alice.expect(is_type("ack"))
        assert ack["seq"] == got["seq"]
        assert not [m for m in await c_bob.collect(0.3) if m.get("type") == "chat_message"]
    run(body())
    assert history(closed, room) == []
    assert history(opened, room) == [text]
    assert hook_metric(closed, "fail_closed") >= 1
    assert hook_metric(opened, "fail_open") >= 1


def test_a_backend_that_is_down_is_decided_by_the_policy():
    nowhere = f"http://127.0.0.1:{free_port()}/hook"
    for policy in ("fail-closed", "fail-open"):
        with hook_server(nowhere, policy) as server:
            async def body():
                alice, bob = await room_of(server, "down", "alice", "bob")
                await alice.chat("anyone there", room="down", id="x-1")
                if policy == "fail-closed":
                    error = await alice.expect(is_type("error"))
                    assert error["code"] == "unavailable" and error["id"] == "x-1", error
                else:
                    await bob.expect(is_chat("down", "anyone there"))
                    await alice.expect(is_type("ack"))
            run(body())
            assert history(server, "down") == ([] if policy == "fail-closed" else ["anyone there"])
            outcome = policy.replace("-", "_")
            assert hook_metric(server, outcome) == 1


def test_order_is_kept_when_the_first_verdict_comes_last(closed, backend):
    async def body():
        alice, bob = await room_of(closed, "order", "alice", "bob")
        await alice.chat("slow first", room="order", id="o-1")
        await alice.chat("fast second", room="order", id="o-2")
        first = await bob.expect(is_type("chat_message"))
        second = await bob.expect(is_type("chat_message"))
        assert (first["message"], second["message"]) == ("slow first", "fast second")
        assert second["seq"] == first["seq"] + 1
        acks = [await alice.expect(is_type("ack")) for _ in range(2)]
        assert [a["id"] for a in acks] == ["o-1", "o-2"]
    run(body())
    # The backend did answer the second first: the order is the server's doing.
    slow = questions_about(backend, "slow first")[0]
    fast = questions_about(backend, "fast second")[0]
    assert slow.delay > 0 and fast.delay == 0
    assert history(closed, "order") == ["slow first", "fast second"]


def test_a_durable_app_event_is_asked_about_and_an_ephemeral_one_is_not(closed, backend):
    async def body():
        alice, bob = await room_of(closed, "events", "alice", "bob")
        await alice.send({"type": "note", "room": "events", "text": "deny this note",
                          "id": "n-1"})
        error = await alice.expect(is_type("error"))
        assert error["code"] == "denied" and error["id"] == "n-1", error
        await alice.send({"type": "note", "room": "events", "text": "a good note", "id": "n-2"})
        note = await bob.expect(is_type("note"))
        assert note["text"] == "a good note" and note["seq"] >= 1
        await alice.send({"type": "cursor", "room": "events", "text": "deny cursor", "x": 1})
        cursor = await bob.expect(is_type("cursor"))
        assert cursor["x"] == 1
    run(body())
    [question] = questions_about(backend, "a good note")
    assert question.json["type"] == "note"
    assert question.json["event"] == {"text": "a good note"}
    assert question.json["id"] == "n-2"
    assert questions_about(backend, "deny this note")
    assert not [q for q in backend.events() if q.json["type"] == "cursor"]


def test_a_users_http_send_goes_through_the_hook(closed, backend):
    token = make_token(sub="u-dave", name="dave")

    def send(text, id_):
        return request(closed, "POST", "/api/rooms/http/messages", {"message": text, "id": id_},
                       key=None, headers={"Authorization": f"Bearer {token}"})

    async def body():
        [bob] = await room_of(closed, "http", "bob")
        reason = expect_error(await asyncio.to_thread(send, "deny over http", "h-1"), 403,
                              "denied")
        assert reason == "No spam here,please"
        status, _, answer = await asyncio.to_thread(send, "rewrite over http", "h-2")
        assert status == 200 and answer["id"] == "h-2", answer
        got = await bob.expect(is_type("chat_message"))
        assert got["message"] == REDACTED and got["userId"] == "u-dave"
        assert got["seq"] == answer["seq"]
    run(body())
    [question] = questions_about(backend, "rewrite over http")
    assert question.json["userId"] == "u-dave" and question.json["username"] == "dave"
    assert history(closed, "http") == [REDACTED]


def test_a_sender_gone_before_its_verdict_still_has_its_message_published(closed, backend):
    async def body():
        alice, bob = await room_of(closed, "gone", "alice", "bob")
        await alice.chat("slow goodbye", room="gone", id="g-1")
        await asyncio.to_thread(questions_about, backend, "slow goodbye")
        alice.abort()
        got = await bob.expect(is_chat("gone", "slow goodbye"), timeout=10)
        assert got["username"] == "alice"
    run(body())


def test_too_many_messages_waiting_for_verdicts_are_refused_not_lost(backend):
    """Per connection at most 32 wait (each answer takes HANG_S, inside this server's
    timeout); the next are refused with `unavailable` naming their id, the waiting ones are
    all published."""
    with RoomcastServer("--publish-hook", backend.url, "--publish-hook-timeout", "10s") as server:
        async def body():
            alice, bob = await room_of(server, "bound", "alice", "bob")
            for i in range(40):
                await alice.chat(f"hang {i}", room="bound", id=f"b-{i}")
            acked, refused = set(), set()
            deadline = time.monotonic() + 20
            while len(acked) + len(refused) < 40 and time.monotonic() < deadline:
                m = await alice.recv(timeout=deadline - time.monotonic())
                if m["type"] == "ack":
                    acked.add(m["id"])
                elif m["type"] == "error":
                    assert m["code"] == "unavailable" and "publish hook" in m["message"], m
                    refused.add(m["id"])
            assert len(acked) + len(refused) == 40
            assert len(refused) >= 8 and len(acked) >= 32, (acked, refused)
            delivered = [m for m in await bob.collect(1) if m.get("type") == "chat_message"]
            assert sorted(m["message"] for m in delivered) == sorted(
                f"hang {i[2:]}" for i in acked)
        run(body(), timeout=40)


def test_the_servers_own_defaults_with_only_a_publish_hook(backend):
    with RoomcastServer("--publish-hook", backend.url, production_defaults=True) as server:
        async def body():
            alice, bob = await room_of(server, "prod", "alice", "bob")
            await alice.chat("deny at defaults", room="prod", id="p-1")
            error = await alice.expect(is_type("error"))
            assert error["code"] == "denied" and error["id"] == "p-1"
            await alice.chat("rewrite at defaults", room="prod", id="p-2")
            got = await bob.expect(is_type("chat_message"))
            assert got["message"] == REDACTED
        run(body())
        # No --webhook-secret: the questions go unsigned.
        [question] = questions_about(backend, "rewrite at defaults")
        assert "X-Roomcast-Signature" not in question.headers
        wait_until(lambda: hook_metric(server, "deny") == 1, 5, "the denial counted")


def test_publish_hook_flags_that_cannot_work_are_refused_at_start():
    code, out = refusal("--publish-hook", "backend/hook")
    assert code == 1 and "--publish-hook: must start with http:// or https://" in out, out
    code, out = refusal("--publish-hook", "http://127.0.0.1:9/", "--publish-hook-policy", "maybe")
    assert code != 0 and "--publish-hook-policy" in out, out
    code, out = refusal("--publish-hook", "http://127.0.0.1:9/", "--publish-hook-timeout", "0")
    assert code != 0 and "--publish-hook-timeout" in out, out
