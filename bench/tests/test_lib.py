"""Tests of the bench library's pure parts (CTest bench_lib): the generated blocks of the
reports and the CPU lists of --server-cores / --generator-cores."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from lib.generator import cpu_list  # noqa: E402
from lib.markdown import rewrite_generated, table  # noqa: E402

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
