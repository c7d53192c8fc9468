"""permessage-deflate in the chat (RFC 7692), with Python websockets, which offers it by default:
a room where half the members negotiated it and half did not, one compressed frame per
message for all of the first half (roomcast_compressed_frames_total), and the limits of the
read path with a real client's compressor."""

import asyncio
import json

import pytest
import websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory

from cluster_support import Member, cluster, metric, redis_server  # noqa: F401
from test_chat_scale import CLIENTS, ROOM, close_all, fill_room
from test_chat_support import DEFAULT_WAIT, ChatClient, is_chat, run

# Chat text that deflate shrinks, well over --compression-min-bytes once in its JSON event.
TEXT = "The quick brown fox jumps over the lazy dog; the lazy dog sleeps on. "


def negotiated_deflate(ws):
    return any(e.name == "permessage-deflate" for e in ws.extensions)


@pytest.fixture
def one_worker(make_server):
    # One worker, so "once per message" is once per message, not once per worker.
    return make_server("--threads", "1")


def test_a_room_half_deflate_half_plain_gets_every_message_once_from_one_shared_frame(one_worker):
    server = one_worker
    messages = 20

    async def body():
        members = await fill_room(
            server, lambda i: {} if i % 2 == 0 else {"compression": None})
        try:
            deflate = [m for i, m in enumerate(members) if i % 2 == 0]
            plain = [m for i, m in enumerate(members) if i % 2 == 1]
            assert all(negotiated_deflate(m.ws) for m in deflate)
            assert not any(negotiated_deflate(m.ws) for m in plain)
            assert metric(server, "roomcast_deflate_connections_total") == CLIENTS // 2
            built_before = metric(server, "roomcast_compressed_frames_total")

            sender = plain[0]  # its acks stay plain: only the broadcasts are compressed
            texts = [f"{i}: {TEXT * 3}" for i in range(messages)]
            for t in texts:
                await sender.ws.send(json.dumps({"type": "chat_message", "message": t}))
            for m in members:
                await m.wait_for(lambda msg: msg.get("type") == "chat_message"
                                 and msg["message"] == texts[-1])
            await asyncio.sleep(0.3)  # room for any duplicate to show up
            for m in members:
                got = [c["message"] for c in m.chats()]
                assert got == texts, f"{m.name} got {len(got)} messages, not each once in order"
            built = metric(server, "roomcast_compressed_frames_total") - built_before
            assert built == messages, f"{built} compressed frames built for {messages} messages"
        finally:
            await close_all(members)
    run(body(), timeout=120)


def test_compression_off_declines_and_builds_nothing(make_server):
    server = make_server("--compression", "off")

    async def body():
        a = await ChatClient.connect(server)
        b = await ChatClient.connect(server)
        assert not negotiated_deflate(a.ws) and not negotiated_deflate(b.ws)
        await a.join("quiet", "ann")
        await b.join("quiet", "bob")
        await a.chat(TEXT * 4)
        await b.expect(is_chat("quiet", TEXT * 4))
        assert metric(server, "roomcast_compressed_frames_total") == 0
        await a.close()
        await b.close()
    run(body())


@pytest.mark.parametrize("options", [
    {},
    {"client_max_window_bits": 9},
    {"client_max_window_bits": 12, "server_max_window_bits": 10},
    {"server_no_context_takeover": True, "client_no_context_takeover": True},
    {"server_max_window_bits": 9},
    {"client_max_window_bits": None},
], ids=["default", "client-bits-9", "both-bits", "no-context", "server-bits-9",
        "client-bits-unoffered"])
def test_websockets_round_trips_through_echo_with_each_offer(make_server, options):
    server = make_server("--echo-endpoint")

    async def body():
        factory = ClientPerMessageDeflateFactory(**options)
        async with websockets.connect(server.ws_url + "/echo", extensions=[factory],
                                      compression=None, open_timeout=5, close_timeout=2,
                                      max_size=None) as ws:
            assert negotiated_deflate(ws)
            ext = ws.extensions[0]
            # We always answer both no_context_takeover parameters (docs/protocol.md).
            assert ext.remote_no_context_takeover and ext.local_no_context_takeover
            for payload in ["short", TEXT * 50, (TEXT * 2000)[:70000], "κόσμε 😀" * 300,
                            bytes(range(256)) * 40]:
                await ws.send(payload)
                assert await asyncio.wait_for(ws.recv(), DEFAULT_WAIT) == payload
            # A fragmented compressed message: RSV1 on its first frame only.
            await ws.send(iter([TEXT * 10, "middle", TEXT * 20]))
            assert await asyncio.wait_for(ws.recv(), DEFAULT_WAIT) == \
                TEXT * 10 + "middle" + TEXT * 20
    run(body())


def test_dedicated_mode_with_websockets_in_a_mixed_room(make_server):
    server = make_server("--compression", "dedicated", "--threads", "1")

    async def body():
        members = [await ChatClient.connect(server) for _ in range(3)]
        members.append(await ChatClient.connect(server, compression=None))
        assert [negotiated_deflate(m.ws) for m in members] == [True, True, True, False]
        for i, m in enumerate(members):
            await m.join("own", f"m{i}")
        texts = [f"{i}: {TEXT * 3}" for i in range(10)]
        for t in texts:
            await members[3].chat(t)
        for m in members:
            for t in texts:
                await m.expect(is_chat("own", t))
        # One frame per deflate recipient and message: each has its own context.
        assert metric(server, "roomcast_compressed_frames_total") >= 3 * len(texts)
        for m in members:
            await m.close()
    run(body())


def test_a_decompression_bomb_from_websockets_is_closed_with_1009(make_server):
    server = make_server("--echo-endpoint", "--max-message-size", "100000")

    async def body():
        async with websockets.connect(server.ws_url + "/echo", open_timeout=5,
                                      close_timeout=2) as ws:
            assert negotiated_deflate(ws)
            await ws.send("a" * 100_000)  # at the limit: fine
            assert len(await asyncio.wait_for(ws.recv(), DEFAULT_WAIT)) == 100_000
            await ws.send("a" * (32 << 20))  # compresses to about 32 KiB
            with pytest.raises(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), DEFAULT_WAIT)
            assert ws.close_code == 1009
        assert metric(server, "roomcast_message_too_big_errors_total") == 1
    run(body())


def test_cluster_nodes_deliver_to_deflate_and_plain_members_alike(cluster):
    nodes = cluster(2, "--threads", "1")
    room = "across"

    async def body():
        members = [
            await Member.join(nodes[0], room, "ann"),
            await Member.join(nodes[1], room, "bob"),
            await Member.join(nodes[1], room, "cy", connect_options={"compression": None}),
        ]
        assert negotiated_deflate(members[0].client.ws)
        assert negotiated_deflate(members[1].client.ws)
        assert not negotiated_deflate(members[2].client.ws)
        texts = [f"{i}: {TEXT * 2}" for i in range(5)]
        for t in texts:
            await members[0].client.chat(t)
        for m in members:
            await m.wait_for_seq(room, len(texts), timeout=20)
            assert [c["message"] for c in m.of_type("chat_message", room)] == texts, m.name
        # Node 2 got the messages through Redis and compressed each once for bob.
        assert metric(nodes[1], "roomcast_compressed_frames_total") >= len(texts)
        for m in members:
            await m.client.close()
    run(body(), timeout=60)
