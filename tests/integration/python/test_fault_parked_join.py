"""A connection whose join waits for its room (here: behind a frozen Redis) cannot grow the
server's memory without bound, and loses nothing: what it sends meanwhile waits up to a bound
(256 messages, 1 MiB per connection, 64 MiB in all); there the server stops reading the
connection until the join is answered, then handles everything it sent, in order (issue 19:
backpressure instead of `unavailable`). Pings go on meanwhile, and the held client, which
answers them, is not terminated for silence however long the join waits."""

import asyncio
import json
import os
import signal

from cluster_support import cluster, metric, redis_server  # noqa: F401 (fixtures)
from test_chat_support import ChatClient, run


def test_messages_behind_a_stalled_join_are_held_then_all_acked_in_order(cluster, redis_server):
    # The join must stay waiting, not be refused; the heartbeat is short, so the hold lasts
    # several idle timeouts.
    node, = cluster(1, "--redis-timeout", "60s", "--ping-interval", "300ms",
                    "--idle-timeout", "1s")

    async def body():
        c = await ChatClient.connect(node)
        os.kill(redis_server.proc.pid, signal.SIGSTOP)
        try:
            await c.send({"type": "join_room", "room": "stalled", "username": "ann"})
            for i in range(300):
                await c.send({"type": "chat_message", "room": "stalled", "message": f"m{i}",
                              "id": f"m-{i}"})
            # Past the bound, whatever its size.
            await c.send(json.dumps({"type": "chat_message", "room": "stalled",
                                     "message": "x" * 400, "id": "big"}))
            await asyncio.sleep(3)  # three idle timeouts: pings answered, nobody terminated
            assert metric(node, "roomcast_reads_held_total") >= 1
        finally:
            os.kill(redis_server.proc.pid, signal.SIGCONT)
        acks = []
        while len(acks) < 301:
            m = await c.expect(lambda m: m["type"] in ("ack", "error"), timeout=30)
            assert m["type"] == "ack", m  # nothing refused
            acks.append(m)
        assert [a["id"] for a in acks] == [f"m-{i}" for i in range(300)] + ["big"]
        seqs = [a["seq"] for a in acks]
        assert seqs == list(range(seqs[0], seqs[0] + 301)), seqs  # stored in the order sent
    run(body(), timeout=90)
