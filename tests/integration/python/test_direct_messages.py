"""Direct messages, stored: numbered per conversation, acked with their seq, recognised when
resent, kept for a token user who is away and recovered with `direct_history` and
`conversations`, readable by nobody else (WebSocket or HTTP), refused to an offline user from an
anonymous sender, across a restart (SQLite), and across the nodes of a cluster. Real binary,
Python websockets clients."""

import urllib.parse

from cluster_support import cluster, redis_server  # noqa: F401 (fixtures)
from roomcast_server import RoomcastServer
from security_support import SECRET
# dm_server: two workers (a user's tabs spread over both), with the test defaults and with the
# server's own (rate limits on, SQLite history); as_user: a token user's connection.
from test_app_events import as_user, dm_server  # noqa: F401 (fixture)
from test_chat_support import QUIET_WINDOW, ChatClient, assert_server_timestamp, is_type, run
from test_history import http_json


def dms(messages):
    return [m for m in messages if m["type"] == "direct_message"]


def test_direct_messages_are_numbered_per_conversation_and_acked_with_their_seq(dm_server):
    async def body():
        ann = await as_user(dm_server, "ann-id", "ann")
        ann_tabs = [await as_user(dm_server, "ann-id", "ann") for _ in range(3)]
        bob_tabs = [await as_user(dm_server, "bob-id", "bob") for _ in range(4)]
        cid = await as_user(dm_server, "cid-id", "cid")
        for n in (1, 2):
            await ann.send({"type": "direct_message", "to": "bob-id", "message": f"m{n}",
                            "id": f"a{n}", "ref": f"r{n}"})
            ack = await ann.expect(is_type("ack"))
            assert ack == {"type": "ack", "to": "bob-id", "id": f"a{n}", "seq": n, "ref": f"r{n}"}
        # Every tab of bob, and ann's other tabs, get each once, numbered; the sender's own
        # connection has the ack instead.
        for tab in bob_tabs + ann_tabs:
            got = dms(await tab.collect(QUIET_WINDOW))
            assert [(m["from"], m["username"], m["to"], m["message"], m["seq"]) for m in got] == \
                [("ann-id", "ann", "bob-id", "m1", 1), ("ann-id", "ann", "bob-id", "m2", 2)]
            assert_server_timestamp(got[0]["timestamp"])
        assert dms(await ann.collect(QUIET_WINDOW)) == []
        assert dms(await cid.collect(QUIET_WINDOW)) == []
        # Another conversation numbers on its own.
        await cid.send({"type": "direct_message", "to": "bob-id", "message": "hey", "id": "c1"})
        assert (await cid.expect(is_type("ack")))["seq"] == 1
    run(body())


def test_a_resent_id_gets_the_same_seq_and_is_delivered_once(dm_server):
    async def body():
        ann = await as_user(dm_server, "ann-id", "ann")
        bob = await as_user(dm_server, "bob-id", "bob")
        for _ in range(2):
            await ann.send({"type": "direct_message", "to": "bob-id", "message": "once",
                            "id": "same"})
            assert (await ann.expect(is_type("ack")))["seq"] == 1
        # After a reconnect too (a new connection of the same token user).
        await ann.close()
        ann = await as_user(dm_server, "ann-id", "ann")
        await ann.send({"type": "direct_message", "to": "bob-id", "message": "once", "id": "same"})
        assert (await ann.expect(is_type("ack")))["seq"] == 1
        got = dms(await bob.collect(QUIET_WINDOW))
        assert [m["seq"] for m in got] == [1]
    run(body())


def test_a_token_user_who_was_away_recovers_the_conversation(dm_server):
    async def body():
        ann = await as_user(dm_server, "ann-id", "ann")
        bob = await as_user(dm_server, "bob-id", "bob")
        await bob.send({"type": "direct_message", "to": "ann-id", "message": "before",
                        "id": "b1"})
        first = await ann.expect(is_type("direct_message"))
        assert first["seq"] == 1
        assert (await bob.expect(is_type("ack")))["seq"] == 1
        await ann.close()
        # Ann is away: bob's messages are kept for her and acked, no user_offline.
        for n in (2, 3):
            await bob.send({"type": "direct_message", "to": "ann-id", "message": f"away{n}",
                            "id": f"b{n}"})
            assert (await bob.expect(is_type("ack")))["seq"] == n
        ann = await as_user(dm_server, "ann-id", "ann")
        await ann.send({"type": "conversations", "ref": "c"})
        listed = await ann.expect(is_type("conversations"))
        assert listed["ref"] == "c"
        assert [(c["with"], c.get("username"), c["lastSeq"]) for c in listed["conversations"]] \
            == [("bob-id", "bob", 3)]
        assert_server_timestamp(listed["conversations"][0]["lastTimestamp"])
        # She saw seq 1: exactly what followed.
        await ann.send({"type": "direct_history", "with": "bob-id", "since": 1, "ref": "h"})
        history = await ann.expect(is_type("direct_history"))
        assert history["with"] == "bob-id" and history["lastSeq"] == 3
        assert history["recovered"] is True and history["ref"] == "h"
        assert [(m["type"], m["from"], m["to"], m["message"], m["seq"])
                for m in history["messages"]] == [
            ("direct_message", "bob-id", "ann-id", "away2", 2),
            ("direct_message", "bob-id", "ann-id", "away3", 3)]
        # Without since: the recent ones, no `recovered`.
        await ann.send({"type": "direct_history", "with": "bob-id"})
        recent = await ann.expect(is_type("direct_history"))
        assert [m["seq"] for m in recent["messages"]] == [1, 2, 3] and "recovered" not in recent
    run(body())


def test_nobody_else_can_read_a_conversation(dm_server):
    async def body():
        ann = await as_user(dm_server, "ann-id", "ann")
        await ann.send({"type": "direct_message", "to": "bob-id", "message": "secret",
                        "id": "s1"})
        await ann.expect(is_type("ack"))
        eve = await as_user(dm_server, "eve-id", "eve")
        # Eve can only name her own conversations: with ann or bob, she has none.
        for peer in ("ann-id", "bob-id"):
            await eve.send({"type": "direct_history", "with": peer, "since": 0})
            got = await eve.expect(is_type("direct_history"))
            assert got["messages"] == [] and got["lastSeq"] == 0
        await eve.send({"type": "conversations"})
        assert (await eve.expect(is_type("conversations")))["conversations"] == []
        # A conversation is no room: its key cannot be joined, nor read over HTTP.
        key = "<dm>ann-id bob-id"
        await eve.send({"type": "join_room", "room": key})
        assert (await eve.expect_error())["code"] == "invalid_field"
        quoted = urllib.parse.quote(key, safe="")
        status, answer = http_json(dm_server, f"/api/rooms/{quoted}/messages?since=0")
        assert status == 400 and "secret" not in str(answer)
        for what in ("poll?since=0", "events"):
            status, answer = http_json(dm_server, f"/api/rooms/{quoted}/{what}")
            assert status == 400 and "secret" not in str(answer), what
        assert dms(await eve.collect(QUIET_WINDOW)) == []
    run(body())


def test_bad_conversation_requests_get_clear_errors(dm_server):
    async def body():
        ann = await as_user(dm_server, "ann-id", "ann")
        for bad, field in [({"type": "direct_history"}, "with"),
                           ({"type": "direct_history", "with": ""}, "with"),
                           ({"type": "direct_history", "with": "a b"}, "with"),
                           ({"type": "direct_history", "with": "bob-id", "since": -1}, "since"),
                           ({"type": "direct_history", "with": "bob-id", "since": "x"}, "since"),
                           ({"type": "direct_message", "to": "<b>", "message": "hi"}, "to")]:
            await ann.send({**bad, "ref": "bad"})
            err = await ann.expect_error(ref="bad")
            assert (err["code"], err["field"]) == ("invalid_field", field), bad
    run(body())


def test_an_anonymous_sender_reaches_only_users_who_are_online(dm_server):
    async def body():
        anon = await ChatClient.connect(dm_server)
        await anon.join("lobby", "anon")
        await anon.send({"type": "direct_message", "to": "bob-id", "message": "hi", "id": "x"})
        err = await anon.expect(is_type("error"))
        assert (err["code"], err["to"], err["id"]) == ("user_offline", "bob-id", "x")
        bob = await as_user(dm_server, "bob-id", "bob")
        await bob.send({"type": "conversations"})
        assert (await bob.expect(is_type("conversations")))["conversations"] == []
        # Bob online: reached, and his answer to the anonymous id reaches it.
        await anon.send({"type": "direct_message", "to": "bob-id", "message": "hi", "id": "y"})
        assert (await anon.expect(is_type("ack")))["seq"] == 1
        got = await bob.expect(is_type("direct_message"))
        assert (got["from"], got["username"]) == (anon.user_id, "anon")
        await bob.send({"type": "direct_message", "to": anon.user_id, "message": "yes?"})
        assert (await anon.expect(is_type("direct_message")))["seq"] == 2
    run(body())


def test_conversations_survive_a_restart(tmp_path):
    async def send_and_leave(server):
        ann = await as_user(server, "ann-id", "ann")
        await ann.send({"type": "direct_message", "to": "bob-id", "message": "kept", "id": "k"})
        assert (await ann.expect(is_type("ack")))["seq"] == 1
        await ann.close()

    async def recover(server):
        bob = await as_user(server, "bob-id", "bob")
        await bob.send({"type": "direct_history", "with": "ann-id", "since": 0})
        got = await bob.expect(is_type("direct_history"))
        assert [(m["message"], m["seq"]) for m in got["messages"]] == [("kept", 1)]
        await bob.send({"type": "conversations"})
        assert [c["with"] for c in (await bob.expect(is_type("conversations")))["conversations"]] \
            == ["ann-id"]
        # Numbering goes on.
        await bob.send({"type": "direct_message", "to": "ann-id", "message": "back", "id": "b"})
        assert (await bob.expect(is_type("ack")))["seq"] == 2

    data = str(tmp_path / "data")
    with RoomcastServer("--jwt-secret", SECRET, data_dir=data, production_defaults=True) as s:
        run(send_and_leave(s))
    with RoomcastServer("--jwt-secret", SECRET, data_dir=data, production_defaults=True) as s:
        run(recover(s))


def test_direct_messages_cross_the_nodes_of_a_cluster(cluster):
    a, b = cluster(2, "--jwt-secret", SECRET)

    async def body():
        ann_a = await as_user(a, "ann-id", "ann")
        ann_b = await as_user(b, "ann-id", "ann")  # ann's other tab, on the other node
        bob_b = [await as_user(b, "bob-id", "bob") for _ in range(2)]
        cid_a = await as_user(a, "cid-id", "cid")
        cid_b = await as_user(b, "cid-id", "cid")
        await ann_a.send({"type": "direct_message", "to": "bob-id", "message": "over there",
                          "id": "x1"})
        assert (await ann_a.expect(is_type("ack")))["seq"] == 1
        for tab in bob_b + [ann_b]:
            got = dms(await tab.collect(QUIET_WINDOW))
            assert [(m["from"], m["to"], m["message"], m["seq"]) for m in got] == \
                [("ann-id", "bob-id", "over there", 1)]
        for other in (ann_a, cid_a, cid_b):
            assert dms(await other.collect(QUIET_WINDOW)) == []
        # Numbered once for the cluster: bob answers from node b, ann's resend from b is known.
        await bob_b[0].send({"type": "direct_message", "to": "ann-id", "message": "back",
                             "id": "y1"})
        assert (await bob_b[0].expect(is_type("ack")))["seq"] == 2
        assert (await ann_a.expect(is_type("direct_message")))["seq"] == 2
        await ann_b.send({"type": "direct_message", "to": "bob-id", "message": "over there",
                          "id": "x1"})
        assert (await ann_b.expect(is_type("ack")))["seq"] == 1
        # Recovery and the list from either node.
        await ann_a.send({"type": "direct_history", "with": "bob-id", "since": 0})
        got = await ann_a.expect(is_type("direct_history"))
        assert [m["seq"] for m in got["messages"]] == [1, 2] and got["recovered"] is True
        await ann_b.send({"type": "conversations"})
        listed = (await ann_b.expect(is_type("conversations")))["conversations"]
        assert [(c["with"], c.get("username"), c["lastSeq"]) for c in listed] == \
            [("bob-id", "bob", 2)]
    run(body())
