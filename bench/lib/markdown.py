"""Markdown for the bench reports: number formatting, tables, and the generated blocks.

A report (bench/*.md) is written by hand; what a driver computes stands between markers

    <!-- generated:NAME -->
    ...
    <!-- /generated:NAME -->

which rewrite_generated() replaces in place, leaving every other line as it is."""

import re
from pathlib import Path


def pct(share):
    return None if share is None else 100 * share


def num(value, decimals=0, unit=""):
    if value is None:
        return "n/a"
    return f"{value:,.{decimals}f}{unit}"


def ratio(a, b, higher_better=True, decimals=1):
    if a is None or b is None:
        return "n/a"
    if higher_better:
        return f"{a / b:.{decimals}f}x" if b > 0 else ("n/a (baseline 0)" if a > 0 else "n/a")
    return f"{b / a:.{decimals}f}x" if a > 0 else "n/a"


JOINT_LIMIT_NOTE = ("**joint limit**: the generator was above 90 % of its core, so the step "
                    "measures it as much as the server")


def step_cell(step, wire=False):
    """One step's medians (lib.aggregate.aggregate_ramp()) in a table cell: deliveries/s, p50 /
    p99 ms, server us per delivery, [wire bytes per delivery,] the generator's busiest process
    in % of its core, then "**joint limit**" (JOINT_LIMIT_NOTE) and "(failed)" where they
    apply; "n/a" when no run reached the step."""
    if step is None:
        return "n/a"
    return (f"{num(step['dps'])} / {num(step['p50'], 2)} / {num(step['p99'], 1)} / "
            f"{num(step['us'], 2)} / " + (f"{num(step['wire'], 1)} B / " if wire else "")
            + f"gen {num(step['gencpu'] and 100 * step['gencpu'], 0)} %"
            + (" **joint limit**" if step["bound"] else "")
            + ("" if step["passed"] == step["runs"] else " (failed)"))


def status(ok):
    return "**met**" if ok else "**not met**"


def table(header, rows):
    """Lines of a Markdown table: `header` a list of cells, `rows` lists of cells."""
    return (["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)] +
            ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def _markers(name):
    return f"<!-- generated:{name} -->", f"<!-- /generated:{name} -->"


def block(name, lines):
    """A generated block as a whole (markers included), for a report written from scratch."""
    start, end = _markers(name)
    return "\n".join([start, *lines, end])


def rewrite_generated(path, blocks, template=None):
    """Replaces the text between the markers of each block name in `blocks` ({name: lines})
    in the file at `path`, keeping everything else. A file that does not exist yet starts as a
    copy of `template` (a report of the same shape). Raises ValueError naming every block whose
    markers are missing, before writing anything."""
    path = Path(path)
    if path.exists():
        text = path.read_text()
    elif template is not None:
        text = Path(template).read_text()
    else:
        raise ValueError(f"{path} does not exist and there is no template to start it from")
    missing = []
    for name, lines in blocks.items():
        start, end = _markers(name)
        pattern = re.compile(re.escape(start) + r"\n.*?" + re.escape(end), re.S)
        if not pattern.search(text):
            pattern = re.compile(re.escape(start) + r"\n?" + re.escape(end))
            if not pattern.search(text):
                missing.append(name)
                continue
        body = "\n".join([start, *lines, end])
        text = pattern.sub(lambda _m: body, text, count=1)
    if missing:
        raise ValueError(f"{path}: no markers for the generated block(s) "
                         f"{', '.join(missing)}; add <!-- generated:NAME --> and "
                         f"<!-- /generated:NAME --> lines where each belongs")
    path.write_text(text)
    return path


def sizes_line(entries_by_name):
    """What was actually run, from the first report's config ({name: manifest entries with
    their "report"}, as lib.aggregate.load_reports() gives them)."""
    for entries in entries_by_name.values():
        for e in entries:
            rep = e.get("report")
            if not rep:
                continue
            c = rep["config"]
            text = (f"As run: {c['connections']:,} connections in {c['rooms']:,} room(s) of "
                    f"{c['clients_per_room']:,}, join rate {c['join_rate']:,.0f}/s")
            if rep["scenario"] == "idle":
                text += f", held {c['hold_seconds']:g} s"
            else:
                text += (f", {c['total_senders']} sender(s), ramp "
                         f"{', '.join(f'{r:g}' for r in c['rates'])} msgs/s, "
                         f"{c['step_seconds']:g} s a step (+{c['grace_seconds']:g} s grace)")
            return text + "."
    return "No report was produced."


def notes_block(entries_by_name, names):
    """Lines naming every failed run, generator warning and early stop of the ramp."""
    notes = []
    for name in names:
        for e in entries_by_name.get(name, []):
            if e.get("error"):
                notes.append(f"- {name}, run {e['run']}: {e['error']}")
            rep = e.get("report")
            if rep:
                for w in rep.get("warnings", []):
                    notes.append(f"- {name}, run {e['run']}: warning: {w}")
                if rep.get("stop_reason"):
                    notes.append(f"- {name}, run {e['run']}: ramp stopped: "
                                 f"{rep['stop_reason']}")
    return (["Notes:", ""] + notes + [""]) if notes else []
