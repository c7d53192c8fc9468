"""The issue's scenarios S1, S2 and S3 (bench/README.md) as roomcast-bench flags (besides
--url, --server-pid and --json), full size and --quick; run_scenarios.py runs all three,
history_cost.py runs S2 against the history stores. `game` is issue 14's game room (50
players in one room, each sending 20 position updates a second: 1,000 msgs/s), which
protocol_cost.py runs with binary and JSON position updates."""

from lib.generator import rates_flag


S2_RATES_FULL = [100, 200, 500, 1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000, 9000, 10000,
                 12000, 14000, 16000, 18000, 20000]
S3_RATES_FULL = [10, 20, 50, 100, 150, 200, 300, 400, 600, 800, 1000, 1500]


SCENARIOS = {
    "S1": {
        "title": "S1 idle: 10,000 connections in 100 rooms of 100",
        "short": "S1 idle",
        "kind": "idle",
        "full": ["--scenario", "idle", "--connections", "10000", "--clients-per-room", "100",
                 "--join-rate", "100000", "--hold-seconds", "40", "--connect-timeout", "30",
                 "--settle-timeout", "60"],
        "quick": ["--scenario", "idle", "--connections", "1000", "--clients-per-room", "100",
                  "--join-rate", "100000", "--hold-seconds", "3", "--connect-timeout", "30",
                  "--settle-timeout", "30"],
    },
    "S2": {
        "title": "S2 fan-out: 2,000 clients in 20 rooms of 100, one sender per room",
        "short": "S2 fan-out",
        "kind": "ramp",
        "full": ["--scenario", "fanout", "--connections", "2000", "--clients-per-room", "100",
                 "--senders-per-room", "1", "--rates", rates_flag(S2_RATES_FULL),
                 "--step-seconds", "10", "--settle-timeout", "60"],
        "quick": ["--scenario", "fanout", "--connections", "400", "--clients-per-room", "100",
                  "--senders-per-room", "1", "--rates", "100,500,1000,2000,4000,8000,16000",
                  "--step-seconds", "2", "--settle-timeout", "30"],
    },
    "S3": {
        "title": "S3 big room: 5,000 clients in one room, one sender",
        "short": "S3 big room",
        "kind": "ramp",
        "full": ["--scenario", "bigroom", "--connections", "5000", "--senders-per-room", "1",
                 "--rates", rates_flag(S3_RATES_FULL), "--step-seconds", "10",
                 "--connect-timeout", "30", "--settle-timeout", "60"],
        "quick": ["--scenario", "bigroom", "--connections", "500", "--senders-per-room", "1",
                  "--rates", "10,20,50,100,200,400", "--step-seconds", "2", "--settle-timeout", "30"],
    },
    "game": {
        "title": "Game room: 50 players in one room, each sending 20 position updates a second",
        "short": "game room",
        "kind": "ramp",
        # Every member sends, round robin, so at 1,000 msgs/s each sends 20 a second; the
        # steps after the first are 40 and 100 a second, to see the headroom.
        "full": ["--scenario", "fanout", "--connections", "50", "--clients-per-room", "50",
                 "--senders-per-room", "50", "--rates", "1000,2000,5000", "--step-seconds", "10",
                 "--settle-timeout", "30"],
        "quick": ["--scenario", "fanout", "--connections", "50", "--clients-per-room", "50",
                  "--senders-per-room", "50", "--rates", "1000", "--step-seconds", "2",
                  "--settle-timeout", "30"],
    },
}


def override(flags, values):
    """`flags` with the value of each flag named in `values` ({"--rates": "100,500"}) replaced,
    or appended where `flags` lacks it."""
    out = list(flags)
    for name, value in values.items():
        if name in out:
            out[out.index(name) + 1] = str(value)
        else:
            out += [name, str(value)]
    return out


def flags(scenario_id, args):
    """roomcast-bench's flags for a scenario, at the size args.quick asks for, with the worker
    processes of args.generator_processes."""
    out = SCENARIOS[scenario_id]["quick" if args.quick else "full"]
    if getattr(args, "generator_processes", 0):
        out = out + ["--processes", str(args.generator_processes)]
    return out
