#!/usr/bin/python3
"""What a room's history window costs in memory: the server's resident memory (VmRSS) grown
by filling rooms with `--history-size` messages each, per room and per message, for each
history store side by side in one run.

One client joins R rooms (one join answered at a time, as a person's client does) and sends
N messages of L characters to each, reading everything back as it goes so that no send
queue grows; the rooms keep their members, so their windows stay in memory. It fills R rooms,
then R more, and reports the second fill's growth (the allocator's pools and buffers were
paid for by the first); the first fill's is shown beside it.

    /usr/bin/python3 bench/history_memory.py                 # 50 rooms x 1000 x 100 chars
    /usr/bin/python3 bench/history_memory.py --rooms 20 --messages 200   # quicker
    /usr/bin/python3 bench/history_memory.py --results bench/HISTORY.md  # rewrite its table

Prints the table; with --results, also rewrites the report's <!-- generated:memory --> block.
"""

import argparse
import asyncio
import json
import sys
from pathlib import Path

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib import REPO  # noqa: E402  (puts the test harness on sys.path)
from lib.machine import machine_info  # noqa: E402
from lib.markdown import rewrite_generated  # noqa: E402
from roomcast_server import RoomcastServer  # noqa: E402

STORES = {"memory": ["--history-store", "memory"], "sqlite": []}


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(f.read().split("VmRSS:")[1].split()[0])


async def fill(ws, first, rooms, messages, length):
    for r in range(first, first + rooms):
        await ws.send(json.dumps({"type": "join_room", "room": f"room{r}", "username": "u"}))
        while json.loads(await ws.recv()).get("type") != "user_list":
            pass
    text = "x" * length
    got = 0

    async def reader():
        nonlocal got
        while got < messages * rooms:
            if json.loads(await ws.recv())["type"] == "chat_message":
                got += 1

    task = asyncio.create_task(reader())
    for i in range(messages):
        for r in range(first, first + rooms):
            await ws.send(json.dumps({"type": "chat_message", "room": f"room{r}", "message": text}))
        while got < (i - 4) * rooms:  # a few rounds in flight at most
            await asyncio.sleep(0.001)
    await task
    await asyncio.sleep(1)


def measure(binary, store, args):
    with RoomcastServer("--threads", "1", "--log-level", "warn",
                        "--max-rooms-per-connection", "0", "--history-size", str(args.messages),
                        *STORES[store], binary=binary) as server:

        async def run():
            async with websockets.connect(server.ws_url + "/", max_queue=None) as ws:
                await ws.recv()
                base = rss_kib(server.proc.pid)
                await fill(ws, 0, args.rooms, args.messages, args.length)
                first = rss_kib(server.proc.pid)
                await fill(ws, args.rooms, args.rooms, args.messages, args.length)
                second = rss_kib(server.proc.pid)
                return (first - base) / args.rooms, (second - first) / args.rooms

        return asyncio.run(run())


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--roomcast", default=str(REPO / "build/src/roomcast"))
    parser.add_argument("--rooms", type=int, default=50)
    parser.add_argument("--messages", type=int, default=1000, help="per room (--history-size)")
    parser.add_argument("--length", type=int, default=100, help="characters per message")
    parser.add_argument("--results", type=Path,
                        help="a report with a generated:memory block to rewrite "
                             "(bench/HISTORY.md)")
    args = parser.parse_args()
    print(f"{args.rooms} rooms, then {args.rooms} more, x {args.messages} messages of "
          f"{args.length} characters; " + ", ".join(f"{k} {v}" for k, v in machine_info().items()))
    table = ["| store | KiB per room | bytes per message | first fill, KiB per room |",
             "| --- | --- | --- | --- |"]
    for store in STORES:
        first, second = measure(args.roomcast, store, args)
        table.append(f"| {store} | {second:.0f} | {second * 1024 / args.messages:.0f} | "
                     f"{first:.0f} |")
    print("\n".join(table))
    if args.results:
        rewrite_generated(args.results, {"memory": table})
        print(f"history_memory: wrote {args.results}")


if __name__ == "__main__":
    main()
