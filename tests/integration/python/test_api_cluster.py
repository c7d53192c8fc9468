"""The server API across a cluster (issues 16 and 17; docs/api.md "Cluster mode"): two real
roomcast nodes on a real redis-server. `/api/disconnect` and `/api/unsubscribe` sent to one
node act on the user's connections on every node (a command on Redis's control channel), and
`/api/info` on any node lists every live node, from the figures each keeps next to its
liveness key; a node killed with SIGKILL leaves the list once its key expires. Every wait is
bounded (cluster_support.async_wait_until); no assertion is about time."""

import asyncio

import websockets

from api_support import API_KEY, expect_error, get, post
from cluster_support import NODE_TTL, async_wait_until, kill_node
from cluster_support import cluster, redis_server  # noqa: F401 (fixtures)
from security_support import SECRET, make_token
from test_chat_support import ChatClient, is_chat, is_type, run

NODE_FLAGS = ("--api-key", API_KEY, "--jwt-secret", SECRET)


async def connect_as(server, sub, name):
    return await ChatClient.connect(server, f"/?token={make_token(sub=sub, name=name)}")


async def closed_with(client):
    """The close the server sent `client` (reading whatever came before it)."""
    try:
        while True:
            await client.recv(timeout=10)
    except websockets.ConnectionClosed as closed:
        return closed.code, closed.reason


def names_in(room):
    return lambda m: (m.get("type") == "user_list" and m.get("room") == room and
                      sorted(u["username"] for u in m["users"]))


def test_disconnect_sent_to_one_node_closes_the_user_on_every_node(cluster):
    a, b = cluster(2, *NODE_FLAGS)

    async def body():
        far = [await connect_as(b, "u-mallory", "mallory") for _ in range(2)]
        near = await connect_as(a, "u-mallory", "mallory")
        oscar = await connect_as(b, "u-oscar", "oscar")
        await oscar.join("lobby", "oscar")
        await far[0].join("lobby", "mallory")
        await oscar.expect(lambda m: names_in("lobby")(m) == ["mallory", "oscar"])

        status, _, answer = await asyncio.to_thread(
            post, a, "/api/disconnect", {"user": "u-mallory", "reason": "Banned"})
        # This node's count, and how many nodes the command reached (this one included).
        assert status == 200, answer
        assert answer == {"user": "u-mallory", "connections": 1, "nodes": 2}, answer
        for client in (*far, near):
            assert await closed_with(client) == (4003, "Banned")
        # Node b's others see the user leave as they see a local disconnect, and carry on.
        await oscar.expect(lambda m: names_in("lobby")(m) == ["oscar"])
        await oscar.chat_roundtrip("lobby", "still here")
        # The user may come back (to node b too).
        again = await connect_as(b, "u-mallory", "mallory")
        await again.join("back", "mallory")
        await again.chat_roundtrip("back", "hello again")
    run(body(), timeout=60)


def test_unsubscribe_sent_to_one_node_takes_the_user_out_of_the_room_on_every_node(cluster):
    a, b = cluster(2, *NODE_FLAGS)

    async def body():
        quinn = await connect_as(b, "u-quinn", "quinn")
        await quinn.join("q-room", "quinn")
        await quinn.join("q-other", "quinn")
        rita = await connect_as(b, "u-rita", "rita")  # quinn's node
        await rita.join("q-room", "rita")
        sam = await connect_as(a, "u-sam", "sam")  # the node the request goes to
        await sam.join("q-room", "sam")
        await sam.expect(lambda m: names_in("q-room")(m) == ["quinn", "rita", "sam"])

        status, _, answer = await asyncio.to_thread(
            post, a, "/api/unsubscribe", {"user": "u-quinn", "room": "q-room",
                                          "reason": "Moderated"})
        assert status == 200, answer
        assert answer == {"user": "u-quinn", "room": "q-room", "connections": 0,
                          "nodes": 2}, answer
        removed = await quinn.expect(is_type("error"))
        assert removed["code"] == "removed_from_room" and removed["room"] == "q-room", removed
        assert removed["message"] == "Moderated", removed
        # Out of the room (sending there is refused), still in the other one.
        await quinn.chat("sneaky", room="q-room")
        assert (await quinn.expect(is_type("error")))["code"] == "not_in_room"
        await quinn.chat("other room fine", room="q-other")
        await quinn.expect(is_chat("q-other", "other room fine"))
        # Everyone sees quinn leave: on quinn's node, and on the other one through presence.
        await rita.expect(lambda m: names_in("q-room")(m) == ["rita", "sam"])
        await sam.expect(lambda m: names_in("q-room")(m) == ["rita", "sam"])
    run(body(), timeout=60)


def test_bad_input_keeps_its_answers_and_sends_nothing_to_the_other_nodes(cluster):
    """Judged before anything is sent: the other node's member stays connected and in."""
    a, b = cluster(2, *NODE_FLAGS)

    async def body():
        x = await connect_as(b, "u-x", "xena")
        await x.join("r", "xena")
        for path, bad in [
            ("/api/disconnect", {}),
            ("/api/disconnect", {"user": "u-x", "reason": "r" * 124}),
            ("/api/disconnect", {"user": "u-x", "room": "r"}),
            ("/api/unsubscribe", {"user": "u-x"}),
            ("/api/unsubscribe", {"user": "u-x", "room": "  "}),
            ("/api/unsubscribe", {"room": "r"}),
        ]:
            expect_error(await asyncio.to_thread(post, a, path, bad), 400, "invalid_field")
        expect_error(await asyncio.to_thread(post, a, "/api/disconnect", {"user": "u-x"},
                                             key="wrong"), 401, "invalid_api_key")
        status, _, _ = await asyncio.to_thread(post, a, "/api/info")
        assert status == 405
        await x.chat_roundtrip("r", "still in")
    run(body(), timeout=60)


def node_entry(info, prefix):
    found = [n for n in info["nodes"] if n["node"].startswith(prefix)]
    return found[0] if found else None


def test_info_lists_every_live_node_and_forgets_a_killed_one(cluster):
    a, b = cluster(2, *NODE_FLAGS)

    async def body():
        on_b = [await connect_as(b, f"u-{i}", f"user{i}") for i in range(3)]
        on_a = await connect_as(a, "u-a", "anna")
        await on_b[0].join("i-room", "user0")

        def both_listed():
            status, _, info = get(a, "/api/info")
            assert status == 200, info
            assert info["cluster_reachable"] is True, info
            first, second = node_entry(info, "node1"), node_entry(info, "node2")
            # Each node refreshes its figures with its liveness (a few times per TTL).
            if first and second and first["connections"] == 1 and second["connections"] == 3:
                return info
            return None

        info = await async_wait_until(both_listed, 5 * NODE_TTL, "both nodes with their counts")
        assert info["node"].startswith("node1") and len(info["nodes"]) == 2, info
        for entry in info["nodes"]:
            assert entry["version"] == info["version"], entry
            assert entry["commit"] == info["commit"], entry
            assert entry["threads"] >= 1 and entry["uptime_seconds"] >= 0, entry
            assert entry["started_at"] > 1.6e9, entry
        assert node_entry(info, "node2")["rooms"] >= 1, info
        # Node b answers the same list.
        status, _, from_b = await asyncio.to_thread(get, b, "/api/info")
        assert sorted(n["node"] for n in from_b["nodes"]) == \
            sorted(n["node"] for n in info["nodes"]), from_b

        await asyncio.to_thread(kill_node, b)

        def b_gone():
            _, _, now = get(a, "/api/info")
            return now if node_entry(now, "node2") is None else None

        after = await async_wait_until(b_gone, 5 * NODE_TTL, "node2 left the list")
        assert [n["node"] for n in after["nodes"]] == [info["node"]], after
        assert node_entry(after, "node1")["connections"] == 1, after
        for client in (on_a, *on_b):  # open to the end: the counts above are theirs
            await client.close()
    run(body(), timeout=60)


def test_with_redis_down_a_disconnect_says_the_other_nodes_were_not_told(cluster,
                                                                        redis_server):
    a, _ = cluster(2, *NODE_FLAGS)

    async def body():
        here = await connect_as(a, "u-vic", "vic")
        await here.join("v-room", "vic")
        redis_server.kill()

        def refused():
            status, _, answer = post(a, "/api/disconnect", {"user": "u-nobody"})
            return (status, answer) if status == 503 else None

        await async_wait_until(refused, 10, "a 503 once the node knows Redis is down")
        status, _, answer = await asyncio.to_thread(
            post, a, "/api/disconnect", {"user": "u-vic", "reason": "Banned"})
        assert status == 503, answer
        assert answer["type"] == "error" and answer["code"] == "cluster_unavailable", answer
        # This node did act: its connections are closed and counted.
        assert answer["connections"] == 1 and "nodes" not in answer, answer
        assert await closed_with(here) == (4003, "Banned")
        # The node list falls back to this node, saying the cluster is out of reach.
        status, _, info = await asyncio.to_thread(get, a, "/api/info")
        assert status == 200 and info["cluster_reachable"] is False, info
        assert [n["node"] for n in info["nodes"]] == [info["node"]], info
    run(body(), timeout=60)
