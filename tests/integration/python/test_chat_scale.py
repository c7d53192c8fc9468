"""Fan-out to a full room: 200 connections from this one process, each drained continuously
by its own reader task so that no client ever looks slow to the server."""

import asyncio
import json

import websockets

from test_chat_support import DEFAULT_WAIT, run

CLIENTS = 200
ROOM = "crowd"


class Member:
    def __init__(self, ws, user_id, name):
        self.ws = ws
        self.user_id = user_id
        self.name = name
        self.messages = []
        self.arrived = asyncio.Event()
        self.reader = asyncio.create_task(self._read())

    async def _read(self):
        try:
            async for raw in self.ws:
                self.messages.append(json.loads(raw))
                self.arrived.set()
        except websockets.ConnectionClosed:
            pass

    async def wait_for(self, pred, timeout=DEFAULT_WAIT * 2):
        async def loop():
            while not any(pred(m) for m in self.messages):
                self.arrived.clear()
                await self.arrived.wait()
        await asyncio.wait_for(loop(), timeout)

    def chats(self):
        return [m for m in self.messages if m.get("type") == "chat_message"]


async def fill_room(server, connect_options=lambda i: {}):
    """CLIENTS members in ROOM; `connect_options(i)`: extra websockets.connect arguments of
    member i (compression=None: it does not offer permessage-deflate)."""
    limit = asyncio.Semaphore(50)

    async def one(i):
        async with limit:
            ws = await websockets.connect(server.ws_url, open_timeout=10, close_timeout=2,
                                          max_queue=None, **connect_options(i))
            hello = json.loads(await asyncio.wait_for(ws.recv(), DEFAULT_WAIT))
            assert hello["type"] == "connection_established"
            member = Member(ws, hello["userId"], f"user{i}")
            await ws.send(json.dumps({"type": "join_room", "room": ROOM, "username": member.name}))
            await member.wait_for(lambda m: m.get("message") == f"Welcome to {ROOM}!")
            return member

    members = await asyncio.gather(*(one(i) for i in range(CLIENTS)))
    # Everybody is in once every member has seen a user_list with all of them.
    for m in members:
        await m.wait_for(lambda msg: msg.get("type") == "user_list"
                         and len(msg["users"]) == CLIENTS)
    return list(members)


async def close_all(members):
    await asyncio.gather(*(m.ws.close() for m in members), return_exceptions=True)
    for m in members:
        m.reader.cancel()


def test_every_one_of_200_members_receives_a_message_exactly_once(server):
    async def body():
        members = await fill_room(server)
        try:
            sender = members[0]
            await sender.ws.send(json.dumps({"type": "chat_message", "message": "hello crowd"}))
            await sender.ws.send(json.dumps({"type": "chat_message", "message": "end"}))
            for m in members:
                await m.wait_for(lambda msg: msg.get("type") == "chat_message"
                                 and msg["message"] == "end")
            seqs = set()
            for m in members:
                hello = [c for c in m.chats() if c["message"] == "hello crowd"]
                assert len(hello) == 1, f"{m.name} got 'hello crowd' {len(hello)} times"
                assert hello[0]["userId"] == sender.user_id
                assert hello[0]["username"] == "user0"
                assert hello[0]["room"] == ROOM
                seqs.add(hello[0]["seq"])
            assert seqs == {1}, "every member sees the same seq for the same message"
        finally:
            await close_all(members)
    run(body(), timeout=120)


def test_200_members_each_sending_once_all_receive_every_message_once_in_seq_order(server):
    async def body():
        members = await fill_room(server)
        try:
            await asyncio.gather(*(m.ws.send(json.dumps(
                {"type": "chat_message", "message": f"from {m.name}"})) for m in members))
            for m in members:
                await m.wait_for(lambda _: len(m.chats()) >= CLIENTS)
            await asyncio.sleep(0.3)  # room for any duplicate to show up
            expected = sorted(f"from {m.name}" for m in members)
            first_order = [c["message"] for c in members[0].chats()]
            for m in members:
                chats = m.chats()
                assert sorted(c["message"] for c in chats) == expected, m.name
                seq = [c["seq"] for c in chats]
                assert seq == list(range(1, CLIENTS + 1)), f"{m.name} saw seq {seq}"
                assert [c["message"] for c in chats] == first_order, \
                    "the same seq means the same message for every member"
        finally:
            await close_all(members)
    run(body(), timeout=180)
