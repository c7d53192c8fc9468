"""Tests of the bench library's pure parts (CTest bench_lib): the generated blocks of the
reports, the CPU lists of --server-cores / --generator-cores, a scenario's flags with some
replaced, a ramp's step medians and their table cell."""

import argparse
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from lib.aggregate import aggregate_ramp, step_at  # noqa: E402
from lib.generator import cpu_list, subset  # noqa: E402
from lib.markdown import rewrite_generated, step_cell, table  # noqa: E402
from lib.scenarios import override  # noqa: E402

REPORT = """# Title

Prose written by hand.

<!-- generated:numbers -->
| old | table |
<!-- /generated:numbers -->

More prose.

<!-- generated:empty -->
<!-- /generated:empty -->
"""


def test_rewrites_only_the_blocks_named(tmp_path):
    path = tmp_path / "REPORT.md"
    path.write_text(REPORT)
    rewrite_generated(path, {"numbers": table(["a", "b"], [[1, 2]]), "empty": ["filled"]})
    assert path.read_text() == """# Title

Prose written by hand.

<!-- generated:numbers -->
| a | b |
| --- | --- |
| 1 | 2 |
<!-- /generated:numbers -->

More prose.

<!-- generated:empty -->
filled
<!-- /generated:empty -->
"""


def test_rewriting_twice_gives_the_same_file(tmp_path):
    path = tmp_path / "REPORT.md"
    path.write_text(REPORT)
    rewrite_generated(path, {"numbers": ["x"]})
    once = path.read_text()
    rewrite_generated(path, {"numbers": ["x"]})
    assert path.read_text() == once


def test_missing_markers_name_the_block_and_write_nothing(tmp_path):
    path = tmp_path / "REPORT.md"
    path.write_text(REPORT)
    with pytest.raises(ValueError, match=r"no markers for the generated block\(s\) absent;"):
        rewrite_generated(path, {"numbers": ["new"], "absent": ["x"]})
    assert path.read_text() == REPORT


def test_a_new_report_starts_from_its_template(tmp_path):
    template = tmp_path / "TEMPLATE.md"
    template.write_text(REPORT)
    path = tmp_path / "quick" / "REPORT.md"
    path.parent.mkdir()
    rewrite_generated(path, {"numbers": ["quick"]}, template=template)
    assert "<!-- generated:numbers -->\nquick\n<!-- /generated:numbers -->" in path.read_text()
    assert "Prose written by hand." in path.read_text()
    assert template.read_text() == REPORT


def test_a_new_report_without_a_template_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        rewrite_generated(tmp_path / "none.md", {"numbers": ["x"]})


def test_cpu_lists():
    assert cpu_list("0") == {0}
    assert cpu_list("0-3") == {0, 1, 2, 3}
    assert cpu_list("0,2,5-6") == {0, 2, 5, 6}
    with pytest.raises(ValueError):
        cpu_list("a-b")


def test_override_replaces_or_appends_flags():
    flags = ["--scenario", "fanout", "--rates", "1,2", "--step-seconds", "10"]
    out = override(flags, {"--rates": "100,500", "--batch-hint": 3})
    assert out == ["--scenario", "fanout", "--rates", "100,500", "--step-seconds", "10",
                   "--batch-hint", "3"]
    assert flags[3] == "1,2", "the scenario's own list is left alone"


def step(rate, received, cpu_s, wire_bytes, passed=True, bound=False, gen=0.5):
    return {"target_rate": rate, "deliveries_per_second": received / 10,
            "deliveries_received": received, "server_cpu_seconds": cpu_s,
            "window_seconds": 10, "latency_ms": {"p50": 1.0, "p99": 4.0},
            "delivered_share": 1.0, "passed": passed, "generator_bound": bound,
            "generator_cpu_share": [gen], "wire_bytes_per_delivery": wire_bytes,
            "bytes_per_message_sent": 25}


def entry(*steps):
    return {"report": {"completed": True, "setup": {}, "config": {"rates": [1000, 2000]},
                       "steps": list(steps)}}


def test_ramp_medians_carry_cpu_and_wire_bytes_per_delivery():
    agg = aggregate_ramp([entry(step(1000, 490000, 0.98, 27.0)),
                          entry(step(1000, 490000, 1.96, 29.0),
                                step(2000, 980000, 2.94, 27.0, passed=False, bound=True))])
    first = step_at(agg, 1000)
    assert first["us"] == pytest.approx(3.0)  # median of 2 and 4 us per delivery
    assert first["wire"] == pytest.approx(28.0)
    assert first["msg"] == 25
    assert step_at(agg, 5000) is None
    assert step_cell(first, wire=True) == "49,000 / 1.00 / 4.0 / 3.00 / 28.0 B / gen 50 %"
    assert step_cell(first) == "49,000 / 1.00 / 4.0 / 3.00 / gen 50 %"
    assert step_cell(step_at(agg, 2000)) == ("98,000 / 1.00 / 4.0 / 3.00 / gen 50 % "
                                             "**joint limit** (failed)")
    assert step_cell(None) == "n/a"


def test_subset_keeps_the_order_given_and_names_what_is_unknown(capsys):
    parser = argparse.ArgumentParser(prog="driver")
    assert subset(parser, "--cases", "json,chat,", ["chat", "event", "json"]) == ["json", "chat"]
    for text, says in (("chat,morse", "--cases: unknown morse; choose from chat,event,json"),
                       ("", "--cases: unknown (none given)")):
        with pytest.raises(SystemExit):
            subset(parser, "--cases", text, ["chat", "event", "json"])
        assert says in capsys.readouterr().err
