"""Load: one client floods while 100 others chat in the same room, with the server's default
limits. The flood is cut by the rate limit, and every message of the 100 reaches all of them."""

import asyncio
import time

from roomcast_server import RoomcastServer
from security_support import SECRET, make_token
from test_chat_support import ChatClient, is_type, run

CHATTERS = 100
MESSAGES_EACH = 5  # below the default limit of 10 per minute
ROOM = "general"


def test_one_flooder_cannot_stop_100_others_from_chatting():
    with RoomcastServer("--jwt-secret", SECRET, production_defaults=True) as server:
        async def body():
            chatters = []
            for i in range(CHATTERS):
                token = make_token(sub=f"user-{i}", name=f"user{i}")
                c = await ChatClient.connect(server, f"/?token={token}")
                await c.join(ROOM)
                chatters.append(c)
            flooder = await ChatClient.connect(server)  # anonymous: limited per connection
            await flooder.join(ROOM, "flooder")

            flooding = True
            flood_sent = 0

            async def flood():
                nonlocal flood_sent
                while flooding:
                    await flooder.chat(f"flood {flood_sent}")
                    flood_sent += 1
                    if flood_sent % 100 == 0:
                        await asyncio.sleep(0)  # let the others' tasks run too

            async def chat(i, c):
                for n in range(MESSAGES_EACH):
                    await c.chat(f"user{i} says {n}")
                    await asyncio.sleep(0.2)

            async def receive_all(c):
                """Every chatter message, in per-sender order; the count of flood messages."""
                expected = CHATTERS * MESSAGES_EACH
                got, flood_seen = [], 0
                deadline = time.monotonic() + 40
                while len(got) < expected:
                    msg = await c.recv(timeout=max(0.1, deadline - time.monotonic()))
                    if not is_type("chat_message")(msg):
                        continue
                    if msg["username"] == "flooder":
                        flood_seen += 1
                    else:
                        got.append(msg["message"])
                return got, flood_seen

            flood_task = asyncio.create_task(flood())
            receivers = [asyncio.create_task(receive_all(c)) for c in chatters]
            await asyncio.gather(*(chat(i, c) for i, c in enumerate(chatters)))
            results = await asyncio.gather(*receivers)
            flooding = False
            await flood_task

            wanted = {f"user{i} says {n}" for i in range(CHATTERS) for n in range(MESSAGES_EACH)}
            for got, flood_seen in results:
                assert len(got) == len(wanted) and set(got) == wanted
                assert flood_seen <= 10, flood_seen  # the limit let ten through, no more
            for i in range(CHATTERS):  # each sender's messages arrive in order
                mine = [m for m in results[0][0] if m.startswith(f"user{i} says")]
                assert mine == [f"user{i} says {n}" for n in range(MESSAGES_EACH)]
            assert flood_sent > 100, f"the flooder sent only {flood_sent} messages"
            refusals = [m for m in await flooder.collect(0.5) if is_type("error")(m)]
            assert refusals and all(m["code"] == "rate_limited" for m in refusals)
        run(body(), timeout=90)
