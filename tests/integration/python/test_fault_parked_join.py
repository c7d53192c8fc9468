"""A connection whose join waits for its room (here: behind a frozen Redis) cannot grow the
server's memory without bound: what it sends meanwhile waits up to a bound (256 messages,
1 MiB per connection, 64 MiB in all), and beyond it each message is refused at once with
`unavailable`, naming its room and id so the client can send it again."""

import asyncio
import json
import os
import signal

from cluster_support import cluster, redis_server  # noqa: F401 (fixtures)
from test_chat_support import ChatClient, is_type, run


def test_messages_behind_a_stalled_join_are_bounded_and_refused_by_id(cluster, redis_server):
    node, = cluster(1, "--redis-timeout", "60s")  # the join must stay waiting, not be refused

    async def body():
        c = await ChatClient.connect(node)
        os.kill(redis_server.proc.pid, signal.SIGSTOP)
        try:
            await c.send({"type": "join_room", "room": "stalled", "username": "ann"})
            for i in range(300):
                await c.send({"type": "chat_message", "room": "stalled", "message": f"m{i}",
                              "id": f"m-{i}"})
            refused = []
            while len(refused) < 45:
                m = await c.expect(is_type("error"))
                assert m["code"] == "unavailable", m
                refused.append((m["room"], m["id"]))
            # The join and 255 messages wait; the rest were refused, in order, each by id.
            assert refused == [("stalled", f"m-{i}") for i in range(255, 300)], refused
            # Nor does anything else, whatever its size; the server keeps serving.
            await c.send(json.dumps({"type": "chat_message", "room": "stalled",
                                     "message": "x" * 400, "id": "big",
                                     "pad": "y" * (1 << 19)}))
            m = await c.expect(is_type("error"))
            assert (m["code"], m["id"]) == ("unavailable", "big"), m
        finally:
            os.kill(redis_server.proc.pid, signal.SIGCONT)
    run(body(), timeout=60)
