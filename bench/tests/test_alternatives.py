"""Tests of bench/alternatives.py's pure parts (CTest bench_lib): its latency buckets and
percentiles, and the refusal of bad options. The driver end to end: alternatives_smoke.py."""

import random
import sys
from collections import Counter
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import alternatives  # noqa: E402


def buckets(latencies_ms):
    return {str(k): v for k, v in Counter(alternatives.bucket(x) for x in latencies_ms).items()}


def test_percentiles_from_buckets_are_within_one_percent():
    rng = random.Random(16)
    latencies = [rng.uniform(0.2, 2000) for _ in range(5000)]
    merged = Counter(buckets(latencies[:2500]))  # two reader processes' figures, merged
    merged.update(buckets(latencies[2500:]))
    ordered = sorted(latencies)
    for p in (50, 99):
        exact = ordered[int(p / 100 * len(ordered)) - 1]
        assert alternatives.percentile(merged, p) == pytest.approx(exact, rel=0.011)


def test_no_latencies_have_no_percentile():
    assert alternatives.percentile({}, 50) is None


@pytest.mark.parametrize("argv, message", [
    (["--transports", "polling,carrier-pigeon"], "unknown carrier-pigeon"),
    (["--transports", ","], "unknown (none given)"),
    (["--readers", "0"], "--readers must be at least 1"),
    (["--rate", "0"], "--rate must be above 0"),
    (["--poll-interval", "-1"], "--poll-interval must be above 0"),
    (["--readers", "40000", "--reader-processes", "1"], "raise --reader-processes"),
    (["--server-cores", "zero"], "is not a CPU list"),
])
def test_bad_options_are_refused_with_a_clear_message(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        alternatives.parse_args(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_many_readers_are_spread_over_processes():
    args = alternatives.parse_args(["--readers", "25000"])
    assert args.reader_processes == 3
