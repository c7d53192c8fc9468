"""Cluster mode over Redis (issue 7): several real roomcast nodes on one real redis-server
(AOF, appendfsync always), driven by Python's websockets: one order for a room on every node,
presence across nodes, `id` idempotency across nodes, subscriptions that follow local
members, kill -9 of a node, Redis stopped and killed in the middle of traffic, and real nginx
in front of the nodes.

Every test starts its own Redis (own port and directory) and nodes with
--cluster-node-ttl 2s (cluster_support.py); every wait has a deadline, and no sleep is an
assertion (the only sleeps pace senders or leave a quiet window in which a duplicate would
show)."""

import asyncio
import json
import os
import re
import shutil
import time

import subprocess

import pytest

from cluster_support import (NODE_TTL, Member, async_wait_until,  # noqa: F401
                             cluster, health, http_get, kill_node, metric, nginx_proxy,
                             node_args, redis_server, wait_until)
from redis_server import RedisServer
from roomcast_server import RoomcastServer, binary_path
from cluster_support import room_entries
from test_chat_support import QUIET_WINDOW, ChatClient, is_chat, is_system, is_type, run

# A dead node's users must be announced gone within its ttl and about a second (the spec);
# this much more is allowed for a loaded test machine.
LEAVE_SLACK = 2.5

HEALTHY = (200, {"status": "ok", "redis": "up"})
DEGRADED = (503, {"status": "degraded", "redis": "down", "reason": "unreachable"})
# Redis keeps the connection but answers nothing (SIGSTOP): degraded once a command is overdue.
NOT_ANSWERING = (503, {"status": "degraded", "redis": "down", "reason": "not_answering"})


def history(server, room):
    """(seq, username, message) of the room's whole history (at most 1000), read over HTTP
    from `server` (any node, or the proxy)."""
    status, body = http_get(server.http_url, f"/api/rooms/{room}/messages?since=0&limit=1000")
    assert status == 200, (status, body)
    body = json.loads(body)
    entries = [(m["seq"], m["username"], m["message"]) for m in body["messages"]]
    assert body["last_seq"] == (entries[-1][0] if entries else 0), body["last_seq"]
    return entries


def acks_of(member, room):
    """{id: seq} of the acks `member` received for `room`; the same id always gets the same
    seq."""
    out = {}
    for a in member.of_type("ack", room):
        assert set(a) == {"type", "room", "id", "seq"}, a
        assert out.setdefault(a["id"], a["seq"]) == a["seq"], (member.name, a, out[a["id"]])
    return out


def count(member, pred):
    return sum(1 for m in member.messages if pred(m))


async def send_paced(member, texts, pace=0.0):
    """Sends each text with id = text, pausing `pace` s between messages."""
    for text in texts:
        await member.chat(text, id=text)
        if pace:
            await asyncio.sleep(pace)


async def wait_for_acks(member, room, ids, timeout=20):
    await member.wait_until(lambda me: set(ids) <= set(acks_of(me, room)), timeout,
                            f"acks of {len(ids)} messages")


async def send_until_acked(m, room, ids, refused, window=4, answer_wait=3):
    """Sends `ids` (text = id) from `m`, `window` at a time, as a client that resends what is
    not acknowledged does: whatever was refused (cluster_unavailable), or not answered within
    `answer_wait` s, is sent again with the same id until it is acknowledged. Counts the
    refusals in refused[m.name]."""
    refused.setdefault(m.name, 0)
    pending = list(ids)
    while pending:
        batch = pending[:window]
        mark = len(m.messages)
        for mid in batch:
            await m.chat(mid, id=mid)

        def errors_since_mark():
            return [x for x in m.messages[mark:] if x.get("type") == "error"]

        def settled(me):
            acked = acks_of(me, room)
            return sum(mid in acked for mid in batch) + len(errors_since_mark()) >= len(batch)
        try:
            await m.wait_until(settled, answer_wait, "answers to a batch")
        except AssertionError:
            if m.closed is not None:
                raise
            # in flight when Redis went away and still unanswered: resend
        errors = errors_since_mark()
        for e in errors:
            assert e["code"] == "cluster_unavailable", e
            assert e["message"].startswith("cluster unavailable"), e
        refused[m.name] += len(errors)
        acked = acks_of(m, room)
        pending = [mid for mid in pending if mid not in acked]
        await asyncio.sleep(0.1 if errors else 0.02)


def history_reply(messages, room):
    """The history reply among `messages` (the one a join with `since` gets)."""
    replies = [m for m in messages if m.get("type") == "history" and m.get("room") == room]
    assert len(replies) == 1, replies
    return replies[0]


# --- (a) one room on three nodes: every message once, one order ------------------------

def test_three_nodes_deliver_every_message_exactly_once_in_one_order(cluster):
    nodes = cluster(3)
    room, per_client, clients = "all", 40, 9

    async def body():
        members = [await Member.join(nodes[i % 3], room, f"user{i}") for i in range(clients)]
        # Every join was answered (welcome) before anything is sent: each must get it all.
        await asyncio.gather(*(send_paced(m, [f"{m.name}:{k}" for k in range(per_client)])
                               for m in members))
        total = clients * per_client
        for m in members:
            await m.wait_for_seq(room, total, timeout=30)
        await asyncio.sleep(QUIET_WINDOW)  # a duplicate or a stray message would show here

        reference = members[0].entries(room)
        assert [s for s, _, _ in reference] == list(range(1, total + 1))
        assert sorted(t for _, _, t in reference) == sorted(
            f"{m.name}:{k}" for m in members for k in range(per_client))
        for m in members:
            assert m.entries(room) == reference, f"{m.name} (on {m.server.port}) saw another order"
            # One connection's messages keep the order it sent them in.
            assert [t for _, u, t in reference if u == m.name] == \
                [f"{m.name}:{k}" for k in range(per_client)], m.name
            # Acks: one per message, with the seq everyone saw it under.
            assert len(m.of_type("ack", room)) == per_client, m.name
            assert acks_of(m, room) == {t: s for s, u, t in reference if u == m.name}
            assert m.closed is None and not m.of_type("error"), (m.name, m.of_type("error"))
        return reference

    reference = run(body(), timeout=90)
    for node in nodes:  # history is in Redis: every node answers the same
        assert history(node, room) == reference


# --- (b) presence across nodes ----------------------------------------------------------

def test_presence_joins_leaves_and_typing_cross_nodes(cluster):
    a, b, c = cluster(3)
    room = "p"

    async def body():
        ann = await Member.join(a, room, "ann")
        await ann.wait_for_users(room, {ann.user_id: "ann"})

        bob = await Member.join(b, room, "bob")
        everyone = {ann.user_id: "ann", bob.user_id: "bob"}
        await ann.wait_for(is_system(room, "bob joined the chat"))
        for m in (ann, bob):
            await m.wait_for_users(room, everyone)

        cat = await Member.join(c, room, "cat")
        everyone[cat.user_id] = "cat"
        for m in (ann, bob):
            msg = await m.wait_for(is_system(room, "cat joined the chat"))
            assert set(msg) == {"type", "room", "message", "timestamp"}, msg
        for m in (ann, bob, cat):
            await m.wait_for_users(room, everyone)

        # Typing on node A reaches B and C, with who is typing.
        marks = {m.name: len(m.messages) for m in (bob, cat)}
        await ann.send({"type": "typing_start", "room": room})
        for m in (bob, cat):
            got = await m.wait_for(is_type("typing_start", room), start=marks[m.name])
            assert got == {"type": "typing_start", "room": room, "userId": ann.user_id,
                           "username": "ann"}, (m.name, got)
        await ann.send({"type": "typing_stop", "room": room})
        for m in (bob, cat):
            got = await m.wait_for(is_type("typing_stop", room), start=marks[m.name])
            assert got == {"type": "typing_stop", "room": room, "userId": ann.user_id,
                           "username": "ann"}, (m.name, got)
        # ... and bob's on node B reaches A.
        await bob.send({"type": "typing_start", "room": room})
        got = await ann.wait_for(is_type("typing_start", room))
        assert got["userId"] == bob.user_id and got["username"] == "bob", got
        await bob.send({"type": "typing_stop", "room": room})
        await ann.wait_for(lambda m: m.get("type") == "typing_stop" and
                           m.get("userId") == bob.user_id)

        # A leave on node C is heard on A and B.
        await cat.send({"type": "leave_room", "room": room})
        del everyone[cat.user_id]
        for m in (ann, bob):
            await m.wait_for(is_system(room, "cat left the chat"))
            await m.wait_for_users(room, everyone)

        # So is a disconnect on node B.
        await bob.close()
        del everyone[bob.user_id]
        await ann.wait_for(is_system(room, "bob left the chat"))
        await ann.wait_for_users(room, everyone)

        # A round trip through Redis, then: every announcement came exactly once, and no
        # one heard their own typing.
        await ann.chat("still here")
        await ann.wait_for(is_chat(room, "still here"))
        await asyncio.sleep(QUIET_WINDOW)
        for text in ("bob joined the chat", "cat joined the chat", "cat left the chat",
                     "bob left the chat"):
            assert count(ann, is_system(room, text)) == 1, (text, ann.messages)
        assert count(bob, is_system(room, "cat joined the chat")) == 1
        assert count(bob, is_system(room, "cat left the chat")) == 1
        for m in (ann, bob, cat):
            assert not [x for x in m.messages if x.get("type", "").startswith("typing_")
                        and x.get("userId") == m.user_id], m.name
        # A joiner is told about nobody's joining but gets the list.
        assert not [x for x in cat.of_type("system_message") if "joined" in x["message"]]
    run(body(), timeout=60)


# --- (c) id idempotency across nodes ----------------------------------------------------

def test_an_id_resent_on_another_node_is_acked_with_the_same_seq_and_stored_once(cluster):
    a, b, c = cluster(3)
    room = "idem"

    async def body():
        watcher = await Member.join(c, room, "wat")
        ann = await Member.join(a, room, "ann")
        await ann.chat("hello", id="msg-1")
        first = await ann.wait_for(is_type("ack", room))
        assert first == {"type": "ack", "room": room, "id": "msg-1", "seq": 1}

        # The same (anonymous) user reconnects to node B without having seen the ack and
        # resends: same ack, nothing new.
        await ann.close()
        ann_b = await Member.join(b, room, "ann")
        await ann_b.chat("hello", id="msg-1")
        assert await ann_b.wait_for(is_type("ack", room)) == first
        # ... and once more from node C, on a third connection.
        ann_c = await Member.join(c, room, "ann")
        await ann_c.chat("hello", id="msg-1")
        assert await ann_c.wait_for(is_type("ack", room)) == first

        # Another user's message with the same id is a message of its own.
        zed = await Member.join(b, room, "zed")
        await zed.chat("from zed", id="msg-1")
        assert await zed.wait_for(is_type("ack", room)) == {**first, "seq": 2}

        # The same id sent at once from two nodes (a race through Redis) is one message.
        ids = [f"race-{k}" for k in range(20)]
        await asyncio.gather(send_paced(ann_b, ids), send_paced(ann_c, ids))
        await wait_for_acks(ann_b, room, ids)
        await wait_for_acks(ann_c, room, ids)
        assert acks_of(ann_b, room) == acks_of(ann_c, room)
        race_seqs = sorted(acks_of(ann_b, room)[i] for i in ids)
        assert race_seqs == list(range(3, 23)), race_seqs

        await watcher.wait_for_seq(room, 22)
        await asyncio.sleep(QUIET_WINDOW)  # a second copy of anything would show here
        expected = [(1, "ann", "hello"), (2, "zed", "from zed")] + sorted(
            (acks_of(ann_b, room)[i], "ann", i) for i in ids)
        assert watcher.entries(room) == expected
        # ann_b joined after "hello": it came as history, then the rest live, once each.
        assert ann_b.entries(room) == expected
        return expected

    expected = run(body(), timeout=60)
    for node in (a, b, c):
        assert history(node, room) == expected


# --- subscriptions follow local members -------------------------------------------------

def test_a_node_subscribes_to_a_room_only_while_it_has_members_there(cluster, redis_server):
    """Read from Redis itself (PUBSUB, CLIENT LIST), whatever the channels are called."""
    a, b = cluster(2)

    def channels():
        return set(redis_server.command("PUBSUB", "CHANNELS", "*"))

    def subscribers(chans):
        reply = redis_server.command("PUBSUB", "NUMSUB", *chans) if chans else []
        return dict(zip(reply[::2], reply[1::2]))

    def subscriber_connections():
        """Client connections of Redis subscribed to anything."""
        lines = redis_server.command("CLIENT", "LIST").splitlines()
        return [line for line in lines
                if not re.search(r" sub=0 ", line) or not re.search(r" psub=0 ", line)]

    base = channels()  # whatever the nodes subscribe to for themselves
    connections = len(subscriber_connections())
    assert connections <= 2, subscriber_connections()

    async def body():
        ann = await Member.join(a, "solo", "ann")
        room = await async_wait_until(lambda: channels() - base, 5, "a channel for the room")
        assert subscribers(room) == {c: 1 for c in room}

        bob = await Member.join(b, "solo", "bob")
        cat = await Member.join(b, "solo", "cat")  # a second member on b: no second subscription
        await async_wait_until(lambda: subscribers(room) == {c: 2 for c in room}, 5,
                               "both nodes subscribed once")
        # More rooms on a node share its one subscriber connection.
        await ann.send({"type": "join_room", "room": "solo2"})
        await ann.wait_for(is_system("solo2", "Welcome to solo2!"))
        await async_wait_until(lambda: len(channels() - base - room) >= 1, 5,
                               "a channel for the second room")
        assert len(await asyncio.to_thread(subscriber_connections)) == max(connections, 2)

        await ann.close()  # a has no member of either room left
        await async_wait_until(lambda: channels() - base == room and
                               subscribers(room) == {c: 1 for c in room}, 5,
                               "a unsubscribed from both rooms")
        await bob.close()
        await cat.wait_for(is_system("solo", "bob left the chat"))  # b has handled the close
        assert await asyncio.to_thread(subscribers, room) == {c: 1 for c in room}, \
            "b must stay subscribed for cat"
        await cat.close()
        await async_wait_until(lambda: channels() == base, 5, "no room channel left")
    run(body(), timeout=60)


# --- (d) kill -9 of a node --------------------------------------------------------------

def test_killed_node_users_leave_everywhere_and_its_clients_recover_on_other_nodes(cluster):
    n1, n2, n3 = cluster(3)
    room = "k"
    before, during = 30, 100

    async def body():
        sender = await Member.join(n1, room, "sender")
        stay = await Member.join(n2, room, "stay")
        victims = [await Member.join(n3, room, "vic1"), await Member.join(n3, room, "vic2")]
        everyone = {m.user_id: m.name for m in [sender, stay, *victims]}
        for m in (sender, stay, *victims):
            await m.wait_for_users(room, everyone)

        texts = [f"m{i}" for i in range(before + during)]
        await send_paced(sender, texts[:before])
        for v in victims:
            await v.wait_for_seq(room, before)

        killed_at = time.monotonic()
        kill_node(n3)
        # Traffic goes on while n3's clients find out, reconnect elsewhere and catch up.
        traffic = asyncio.create_task(send_paced(sender, texts[before:], pace=0.02))

        for v in victims:
            await v.wait_until(lambda me: me.closed is not None, 5, "the connection to end")
        since = {v.name: v.entries(room)[-1][0] for v in victims}
        back = [await Member.join(n1, room, "vic1", since=since["vic1"]),
                await Member.join(n2, room, "vic2", since=since["vic2"])]

        # The dead node's users are announced gone, within the ttl and a little.
        for m in (sender, stay):
            for v in victims:
                left = killed_at + NODE_TTL + LEAVE_SLACK - time.monotonic()
                await m.wait_for(is_system(room, f"{v.name} left the chat"), timeout=max(left, 0))
        now = {m.user_id: m.name for m in [sender, stay, *back]}
        for m in (sender, stay, *back):
            left = killed_at + NODE_TTL + LEAVE_SLACK - time.monotonic()
            await m.wait_for_users(room, now, timeout=max(left, 0.5))

        await asyncio.wait_for(traffic, 30)
        total = before + during
        for m in (sender, stay, *back):
            await m.wait_for_seq(room, total)
        await asyncio.sleep(QUIET_WINDOW)

        reference = [(i + 1, "sender", t) for i, t in enumerate(texts)]
        assert sender.entries(room) == reference
        assert stay.entries(room) == reference
        assert acks_of(sender, room) == {t: s for s, _, t in reference}
        for old, new in zip(victims, back):
            recovery = new.of_type("history", room)
            assert len(recovery) == 1 and recovery[0]["recovered"] is True, recovery
            # What it saw before the crash, then what it missed, then live: no gap, no dup.
            assert old.entries(room) + new.entries(room) == reference, new.name
        for m in (sender, stay):
            for v in victims:
                assert count(m, is_system(room, f"{v.name} left the chat")) == 1, (m.name, v.name)
        return reference

    reference = run(body(), timeout=90)
    assert history(n1, room) == history(n2, room) == reference


# --- (e) Redis stopped or killed in the middle of traffic -------------------------------

@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_redis_restart_mid_traffic_keeps_clients_and_loses_nothing_acknowledged(
        cluster, redis_server, how):
    nodes = cluster(3)
    room, senders, per_sender = "r", 6, 60

    async def body():
        members = [await Member.join(nodes[i % 3], room, f"s{i}") for i in range(senders)]
        refused = {m.name: 0 for m in members}  # cluster_unavailable errors per sender

        async def send_reliably(m):
            # The error names no id: an error means "resend what is still unacknowledged".
            await send_until_acked(m, room, [f"{m.name}-{k}" for k in range(per_sender)], refused)

        def acked_count():
            return sum(len(acks_of(m, room)) for m in members)

        traffic = [asyncio.create_task(send_reliably(m)) for m in members]
        for _ in range(200):  # some traffic with Redis up first
            if acked_count() >= 60 or any(t.done() for t in traffic):
                break
            await asyncio.sleep(0.05)
        assert acked_count() >= 60, acked_count()

        await asyncio.to_thread(redis_server.stop if how == "sigterm" else redis_server.kill)
        await async_wait_until(lambda: all(health(n) == DEGRADED for n in nodes), 5,
                               "/healthz 503 on every node")
        await async_wait_until(lambda: all(metric(n, "roomcast_redis_up") == 0 for n in nodes),
                               5, "roomcast_redis_up 0 on every node")
        # Redis stays down until every sender has been refused (its messages are neither
        # acknowledged nor delivered meanwhile) ...
        # (A sender whose whole window was in flight at the drop waits up to 3 s for it.)
        for _ in range(160):
            if all(refused.values()):
                break
            await asyncio.sleep(0.05)
        assert all(refused.values()), f"not every sender was refused while Redis was down: {refused}"
        acked_while_down = acked_count()
        # A join of a room no node has loaded is refused too; the connection stays.
        newcomer = await ChatClient.connect(nodes[0])
        await newcomer.send({"type": "join_room", "room": "elsewhere", "username": "new"})
        error = await newcomer.expect_error()
        assert error["code"] == "cluster_unavailable", error
        assert all(m.closed is None for m in members), "a client lost its WebSocket"
        # ... and a little longer, so that the nodes' reconnect backoff grows.
        await asyncio.sleep(1.0)
        assert acked_count() == acked_while_down, "acks came while Redis was down"
        assert all(m.closed is None for m in members), "a client lost its WebSocket"

        await asyncio.to_thread(redis_server.start)
        await async_wait_until(lambda: all(health(n) == HEALTHY for n in nodes), 10,
                               "/healthz 200 on every node after Redis is back")
        await async_wait_until(lambda: all(metric(n, "roomcast_redis_up") == 1 for n in nodes),
                               5, "roomcast_redis_up 1 on every node")
        for n in nodes:
            assert metric(n, "roomcast_redis_reconnects_total") >= 1, n.port

        await asyncio.wait_for(asyncio.gather(*traffic), 60)
        total = senders * per_sender
        for m in members:
            await m.wait_for_seq(room, total, timeout=20)
        await asyncio.sleep(QUIET_WINDOW)
        assert all(m.closed is None for m in members), "a client lost its WebSocket"
        return members, refused

    members, refused = run(body(), timeout=120)
    stored = history(nodes[0], room)
    total = senders * per_sender
    # Every message was acknowledged in the end (the senders resent until it was), and every
    # acknowledged id is in history exactly once, under the seq its ack said.
    assert [s for s, _, _ in stored] == list(range(1, total + 1))
    texts = [t for _, _, t in stored]
    assert len(set(texts)) == total, "a message is stored twice"
    acked = {}
    for m in members:
        acked.update(acks_of(m, room))
    assert len(acked) == total
    assert {t: s for s, _, t in stored} == acked
    for n in nodes[1:]:
        assert history(n, room) == stored
    # Every member on every node saw exactly that sequence, once, in order.
    for m in members:
        assert m.entries(room) == stored, m.name
    assert all(refused.values()), refused


# --- (e2) Redis emptied (FLUSHALL) and Redis hung (SIGSTOP) under traffic ---------------

def restart_empty(redis_server):
    """A Redis restarted without its data (no AOF, or a failover to an empty replica)."""
    redis_server.kill()
    for name in os.listdir(redis_server.dir):
        path = os.path.join(redis_server.dir, name)
        shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
    redis_server.start()
    return "OK"


@pytest.mark.parametrize("how", ["flushall", "restart_empty", "rewound"])
def test_redis_emptied_under_traffic_gives_a_new_epoch_no_ghost_leaves_no_mute_room(
        cluster, redis_server, how):
    """FLUSHALL, a Redis restarted without its data (what a failover to an empty replica
    does too), and a room's counter gone back (a failover to a replica that lagged: Redis
    keeps its generation), under traffic. Members on both nodes stay (nobody is announced as left),
    every message sent across it is acknowledged or refused and then resent, every member
    sees every acknowledged message once, no seq is given twice (the numbering continues in
    a new epoch), a client with a seq from before is told recovered: false, and a newcomer
    gets no history that Redis no longer has."""
    nodes = cluster(3)  # the third has no member: its history API reads Redis
    room = "r"

    async def body():
        ann = await Member.join(nodes[0], room, "ann")
        bob = await Member.join(nodes[1], room, "bob")
        wat = await Member.join(nodes[0], room, "wat")  # only listens
        members = [ann, bob, wat]
        everyone = {ann.user_id: "ann", bob.user_id: "bob", wat.user_id: "wat"}
        for m in members:
            await m.wait_for_users(room, everyone)
        refused = {}
        await asyncio.gather(*(send_until_acked(m, room, [f"{m.name}-old-{k}" for k in range(10)],
                                                refused) for m in (ann, bob)))
        old_last = max({**acks_of(ann, room), **acks_of(bob, room)}.values())

        traffic = [asyncio.create_task(send_until_acked(
            m, room, [f"{m.name}-new-{k}" for k in range(40)], refused, window=1))
            for m in (ann, bob)]
        # In the middle of the traffic.
        await ann.wait_until(lambda me: len(acks_of(me, room)) >= 20, 20, "some new acks")
        flushed_ms = int(time.time() * 1000)
        if how == "flushall":
            assert await asyncio.to_thread(redis_server.command, "FLUSHALL") == "OK"
        elif how == "restart_empty":
            await asyncio.to_thread(restart_empty, redis_server)
        else:
            assert await asyncio.to_thread(redis_server.command, "SET", f"rc:{{{room}}}:seq",
                                           "3") == "OK"
        await asyncio.wait_for(asyncio.gather(*traffic), 60)
        acked = {**acks_of(ann, room), **acks_of(bob, room)}
        for m in members:
            await m.wait_for_seq(room, max(acked.values()), timeout=20)
        # Presence settles for a node TTL, then every node reads the members again: a ghost
        # leave would come by then.
        await asyncio.sleep(NODE_TTL + 2)
        for m in members:
            await m.wait_for_users(room, everyone)

        # Clients coming back: one with a seq from before the flush, one up to date, and
        # newcomers on each node.
        stale = [await Member.join(n, room, f"stale{i}", since=old_last - 5)
                 for i, n in enumerate(nodes[:2])]
        current = await Member.join(nodes[1], room, "current", since=max(acked.values()))
        fresh = [await Member.join(n, room, f"fresh{i}") for i, n in enumerate(nodes[:2])]
        await asyncio.sleep(QUIET_WINDOW)
        return members, acked, old_last, flushed_ms, stale, current, fresh

    members, acked, old_last, flushed_ms, stale, current, fresh = run(body(), timeout=150)
    for m in members:
        left = [x for x in m.messages if x.get("type") == "system_message"
                and "left the chat" in x.get("message", "")]
        assert not left, (m.name, left)
    # No seq given twice: the numbering before the flush, then one new epoch above anything
    # the clock allowed before.
    seqs = sorted(acked.values())
    assert len(set(seqs)) == len(seqs) == 100, "a seq was given twice"
    before = [s for s in seqs if s < flushed_ms * 1000]
    after = [s for s in seqs if s >= flushed_ms * 1000]
    assert before == list(range(1, len(before) + 1)) and len(before) >= 20, before
    assert after and after == list(range(after[0], after[0] + len(after))), after
    assert after[0] < 2 ** 53  # exact in JavaScript
    # Every member saw every acknowledged message once, in one order.
    for m in members:
        entries = m.entries(room)
        assert [s for s, _, _ in entries] == seqs, m.name
        assert {t: s for s, _, t in entries} == acked, m.name
    # History is Redis's: only the new epoch, the same on both nodes.
    stored = history(nodes[0], room)
    assert stored == history(nodes[1], room) == history(nodes[2], room)
    assert {t: s for s, _, t in stored} == {i: s for i, s in acked.items() if s in after}
    for f in fresh:
        got = room_entries(f.messages, room)
        assert got and all(s in after for s, _, _ in got), (f.name, got)
    # Old seqs are not taken for recovered; an up-to-date client missed nothing.
    for c in stale:
        assert history_reply(c.messages, room)["recovered"] is False, c.name
    assert history_reply(current.messages, room)["recovered"] is True
    if how != "rewound":  # Redis's generation changed: every node noticed
        for n in nodes:
            assert metric(n, "roomcast_redis_data_losses_total") >= 1, n.port


def test_a_hung_redis_is_refused_within_the_command_timeout_and_chat_resumes_after_sigcont(
        cluster, redis_server):
    """SIGSTOP of Redis: the connections stay open and nothing answers. Within the command
    timeout (1 s here, and a generous margin) /healthz says degraded, messages get
    cluster_unavailable naming them, a join of a room not loaded and a history read that
    waited on Redis are refused; a message in
    flight at the stop is answered after SIGCONT; then chat resumes and every acknowledged
    message is stored and delivered exactly once."""
    nodes = cluster(2, "--redis-timeout", "1s")
    room = "r"

    async def body():
        ann = await Member.join(nodes[0], room, "ann")
        bob = await Member.join(nodes[1], room, "bob")
        refused = {}
        await send_until_acked(ann, room, ["ann-0", "ann-1"], refused)
        try:
            await asyncio.to_thread(redis_server.freeze)
            await ann.chat("ann-in-flight", id="ann-in-flight")
            # A history read of a room no node holds in memory, waiting on the stopped Redis.
            pending_read = asyncio.create_task(asyncio.to_thread(
                http_get, nodes[1].http_url, "/api/rooms/elsewhere/messages", 10))
            await async_wait_until(lambda: all(health(n) == NOT_ANSWERING for n in nodes), 1 + 6,
                                   "/healthz degraded on every node while Redis is stopped")
            mark = len(bob.messages)
            await bob.chat("bob-while-hung", id="bob-while-hung")
            error = await bob.wait_for(lambda x: x.get("type") == "error", timeout=5, start=mark)
            assert error["code"] == "cluster_unavailable", error
            assert (error["room"], error["id"]) == (room, "bob-while-hung"), error
            newcomer = await ChatClient.connect(nodes[0])
            await newcomer.send({"type": "join_room", "room": "elsewhere", "username": "new"})
            assert (await newcomer.expect_error(timeout=5))["code"] == "cluster_unavailable"
            # The read that waited is answered, and so is a new one.
            for status, body in (await pending_read, await asyncio.to_thread(
                    http_get, nodes[1].http_url, "/api/rooms/elsewhere/messages")):
                assert status == 503 and b"cluster_unavailable" in body, (status, body)
            assert set(acks_of(ann, room)) == {"ann-0", "ann-1"}
            assert not acks_of(bob, room)
        finally:
            await asyncio.to_thread(redis_server.thaw)
        await async_wait_until(lambda: all(health(n) == HEALTHY for n in nodes), 15,
                               "/healthz 200 on every node after SIGCONT")
        # The message in flight at the stop gets its answer without being sent again.
        await ann.wait_until(lambda me: "ann-in-flight" in acks_of(me, room) or any(
            x.get("type") == "error" and x.get("id") == "ann-in-flight" for x in me.messages),
            15, "an answer to the message in flight")
        await asyncio.gather(send_until_acked(ann, room, ["ann-in-flight", "ann-2"], refused),
                             send_until_acked(bob, room, ["bob-while-hung", "bob-2"], refused))
        ids = {"ann-0", "ann-1", "ann-in-flight", "ann-2", "bob-while-hung", "bob-2"}
        acked = {**acks_of(ann, room), **acks_of(bob, room)}
        assert set(acked) == ids
        for m in (ann, bob):
            await m.wait_for_seq(room, max(acked.values()), timeout=20)
        await asyncio.sleep(QUIET_WINDOW)
        for n in nodes:
            assert metric(n, "roomcast_redis_reconnects_total") >= 1, n.port
        return ann, bob, acked

    ann, bob, acked = run(body(), timeout=90)
    stored = history(nodes[0], room)
    assert {t: s for s, _, t in stored} == acked
    assert [s for s, _, _ in stored] == sorted(acked.values())
    assert history(nodes[1], room) == stored
    for m in (ann, bob):
        assert m.entries(room) == stored, m.name


# --- (f) nginx in front of three nodes --------------------------------------------------

def test_nginx_in_front_of_three_nodes_needs_no_sticky_sessions(cluster, nginx_proxy):
    nodes = cluster(3)
    proxy = nginx_proxy(nodes)
    assert health(proxy) == HEALTHY
    room, clients, per_client = "edge", 6, 20

    async def body():
        members = [await Member.join(proxy, room, f"web{i}") for i in range(clients)]
        everyone = {m.user_id: m.name for m in members}
        for m in members:
            await m.wait_for_users(room, everyone)
        # The proxy spread the clients over all the nodes.
        spread = await asyncio.to_thread(
            lambda: [metric(n, "roomcast_connections_active") for n in nodes])
        assert sum(spread) == clients and all(c >= 1 for c in spread), spread

        await asyncio.gather(*(send_paced(m, [f"{m.name}:{k}" for k in range(per_client)])
                               for m in members))
        total = clients * per_client
        for m in members:
            await m.wait_for_seq(room, total, timeout=30)
        await asyncio.sleep(QUIET_WINDOW)
        reference = members[0].entries(room)
        assert [s for s, _, _ in reference] == list(range(1, total + 1))
        for m in members:
            assert m.entries(room) == reference, m.name
            assert len(acks_of(m, room)) == per_client
        return reference

    reference = run(body(), timeout=60)
    assert history(proxy, room) == reference


def test_nginx_clients_of_a_killed_node_reconnect_through_the_proxy_and_recover(
        cluster, nginx_proxy):
    nodes = cluster(3)
    proxy = nginx_proxy(nodes)
    room, clients = "edge", 6

    async def body():
        members = [await Member.join(proxy, room, f"web{i}") for i in range(clients)]
        everyone = {m.user_id: m.name for m in members}
        for m in members:
            await m.wait_for_users(room, everyone)
        await send_paced(members[0], [f"before {k}" for k in range(10)])
        for m in members:
            await m.wait_for_seq(room, 10)

        on_victim = int(await asyncio.to_thread(metric, nodes[2], "roomcast_connections_active"))
        assert on_victim >= 1
        killed_at = time.monotonic()
        kill_node(nodes[2])
        await async_wait_until(
            lambda: sum(m.closed is not None for m in members) == on_victim, 5,
            f"the {on_victim} connections through the proxy to the killed node to end")
        cut = [m for m in members if m.closed is not None]
        alive = [m for m in members if m.closed is None]
        sender = alive[0]
        texts = [f"during {k}" for k in range(60)]
        traffic = asyncio.create_task(send_paced(sender, texts, pace=0.02))

        # Reconnect through the same proxy address; nginx finds a live node.
        back = [await Member.join(proxy, room, m.name, since=m.entries(room)[-1][0])
                for m in cut]
        for m in alive:
            for c in cut:
                left = killed_at + NODE_TTL + LEAVE_SLACK - time.monotonic()
                await m.wait_for(is_system(room, f"{c.name} left the chat"), timeout=max(left, 0))
        await asyncio.wait_for(traffic, 30)
        total = 10 + len(texts)
        for m in alive + back:
            await m.wait_for_seq(room, total)
        await asyncio.sleep(QUIET_WINDOW)
        reference = sender.entries(room)
        assert [s for s, _, _ in reference] == list(range(1, total + 1))
        for m in alive:
            assert m.entries(room) == reference, m.name
        for old, new in zip(cut, back):
            assert new.of_type("history", room)[0]["recovered"] is True
            assert old.entries(room) + new.entries(room) == reference, new.name
    run(body(), timeout=60)
    assert health(proxy) == HEALTHY


# --- presence under concurrent joins ----------------------------------------------------

def test_joins_racing_on_every_node_leave_every_user_list_complete(cluster):
    """A node loading a room reads its members (command connection) while joins elsewhere
    keep arriving (subscriber connection); nothing orders the two. Every client's final
    user_list must still list everyone, on every node. (A join heard while the room was
    loading used to be lost for good on that node.)"""
    nodes = cluster(3)
    per_node = 30

    async def round_of_joins(rooms):
        def room_of(i):
            return rooms[(i // len(nodes)) % len(rooms)]  # each room has members on each node

        async def join(i):
            return await Member.join(nodes[i % len(nodes)], room_of(i), f"u{i}")
        members = await asyncio.gather(*(join(i) for i in range(per_node * len(nodes))))
        for room in rooms:
            in_room = [m for i, m in enumerate(members) if room_of(i) == room]
            everyone = {m.user_id: m.name for m in in_room}
            for m in in_room:
                await m.wait_for_users(room, everyone, timeout=15)
        for m in members:
            m.abort()

    # The race is a matter of timing: a few rounds, each on rooms no node has loaded yet.
    for r in range(3):
        run(round_of_joins([f"race-{r}-{k}" for k in range(3)]))


# --- start-up: a bad --redis, and a node that starts before Redis ------------------------

def test_a_malformed_redis_url_stops_the_node_at_start_with_the_reason():
    for url, reason in (("http://127.0.0.1:6379", "redis://"),
                        ("redis://127.0.0.1:99999", "port"),
                        ("redis://127.0.0.1/first", "database")):
        done = subprocess.run([binary_path(), "--port", "0", "--redis", url],
                              capture_output=True, text=True, timeout=10)
        assert done.returncode == 1, (url, done.returncode)
        assert reason in done.stdout + done.stderr, (url, done.stdout, done.stderr)


def test_a_redis_timeout_out_of_range_stops_the_node_at_start_with_the_reason():
    for value, reason in (("0", "must be more than 0"), ("50ms", "at least 100ms"),
                          ("soon", "--redis-timeout")):
        done = subprocess.run([binary_path(), "--port", "0", "--redis", "redis://127.0.0.1:1",
                               "--redis-timeout", value],
                              capture_output=True, text=True, timeout=10)
        assert done.returncode != 0, (value, done.returncode)
        assert reason in done.stdout + done.stderr, (value, done.stdout, done.stderr)


def test_a_node_started_before_redis_serves_degraded_then_joins_when_redis_comes():
    redis = RedisServer()  # not started yet: its port is free
    node = RoomcastServer(*node_args(redis, 1), degraded_is_started=True).start()
    try:
        assert health(node) == DEGRADED
        assert metric(node, "roomcast_redis_up") == 0

        async def scenario():
            client = await ChatClient.connect(node)
            await client.send({"type": "join_room", "room": "early", "username": "ann"})
            refused, _ = await client.recv_until(is_type("error"))
            assert refused["code"] == "cluster_unavailable", refused
            assert "cluster unavailable" in refused["message"], refused

            redis.start()
            await async_wait_until(lambda: health(node) == HEALTHY, 10, "node healthy")
            # The same connection joins and chats once Redis is there.
            await client.send({"type": "join_room", "room": "early", "username": "ann"})
            await client.recv_until(is_system("early", "Welcome to early!"))
            await client.send({"type": "chat_message", "message": "first", "id": "e-1"})
            ack, _ = await client.recv_until(is_type("ack"))
            assert (ack["room"], ack["id"], ack["seq"]) == ("early", "e-1", 1), ack
            await client.ws.close()

        run(scenario())
        assert history(node, "early") == [(1, "ann", "first")]
    finally:
        node.stop()
        redis.cleanup()


def test_a_password_protected_redis_needs_the_right_password_in_the_url(tmp_path):
    redis = RedisServer(dir=tmp_path / "redis", password="s3cret").start()
    good = bad = None
    try:
        good = RoomcastServer(*node_args(redis, 1)).start()  # the URL carries the password
        assert health(good) == HEALTHY

        wrong = RedisServer(port=redis.port, password="wrong")  # only for its URL
        bad = RoomcastServer(*node_args(wrong, 2), degraded_is_started=True).start()
        # It serves, degraded, and says why; it never joins the cluster with a bad password.
        wait_until(lambda: "AUTH refused" in bad.log(), 10, "AUTH refusal in the log")
        assert health(bad) == DEGRADED
        assert "s3cret" not in bad.log() and "wrong" not in bad.log()
    finally:
        for node in (good, bad):
            if node is not None:
                node.stop()
        redis.cleanup()
