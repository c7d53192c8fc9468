"""Aggregation of roomcast-bench JSON reports: medians over runs, the sustained figure of a
ramp (its highest passing step), the figures of an idle hold."""

import json
import statistics


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def load_reports(out_dir, manifest):
    """{scenario: {server: [report or None per run]}} plus the failed entries."""
    by = {}
    for entry in manifest["runs"]:
        report = None
        if entry.get("json"):
            try:
                report = json.loads((out_dir / entry["json"]).read_text())
            except (OSError, ValueError) as e:
                entry["error"] = entry.get("error") or f"unreadable JSON: {e}"
        entry["report"] = report
        by.setdefault(entry["scenario"], {}).setdefault(entry["server"], []).append(entry)
    return by


def highest_pass(report):
    """The highest passing step of a ramp (or None) and the step after it (the first failure)."""
    best = None
    fail = None
    for step in report.get("steps", []):
        if step["passed"]:
            best = step
        elif fail is None:
            fail = step
    return best, fail


def us_per_delivery(step):
    cpu = step.get("server_cpu_seconds")
    received = step.get("deliveries_received") or 0
    if cpu is None or received == 0:
        return None
    return cpu / received * 1e6


def aggregate_ramp(entries):
    """Per-step medians over runs (keyed by target rate) and the sustained figure."""
    steps = {}
    figures = []
    figure_rates = []
    bound_at_figure = []
    exhausted = []
    join_s = []
    settle_s = []
    complete_runs = 0
    for entry in entries:
        report = entry["report"]
        if report is None:
            continue
        if report.get("completed"):
            complete_runs += 1
        join_s.append(report["setup"].get("join_seconds"))
        settle_s.append(report["setup"].get("presence_settled_seconds"))
        for step in report.get("steps", []):
            rec = steps.setdefault(step["target_rate"], {"dps": [], "p50": [], "p99": [],
                                                         "share": [], "us": [], "passed": 0,
                                                         "runs": 0, "bound": 0, "gencpu": [],
                                                         "cpu": [], "wire": [], "msg": []})
            rec["runs"] += 1
            rec["dps"].append(step["deliveries_per_second"])
            rec["p50"].append(step["latency_ms"]["p50"])
            rec["p99"].append(step["latency_ms"]["p99"])
            rec["share"].append(step["delivered_share"])
            rec["us"].append(us_per_delivery(step))
            rec["passed"] += 1 if step["passed"] else 0
            rec["bound"] += 1 if step["generator_bound"] else 0
            rec["gencpu"].append(max(step.get("generator_cpu_share") or [0]))
            cpu = step.get("server_cpu_seconds")
            window = step.get("window_seconds") or 0
            rec["cpu"].append(cpu / window if cpu is not None and window > 0 else None)
            # WebSocket bytes the generator read per delivery (frame headers included): what
            # the server sent on the wire for each, presence and pings of the window too.
            rec["wire"].append(step.get("wire_bytes_per_delivery") or None)
            rec["msg"].append(step.get("bytes_per_message_sent") or None)
        best, fail = highest_pass(report)
        # No step failed and every rate was run: the figure is only a lower bound.
        exhausted.append(fail is None and best is not None and
                         len(report.get("steps", [])) == len(report["config"]["rates"]))
        figures.append(best["deliveries_per_second"] if best else 0.0)
        figure_rates.append(best["target_rate"] if best else 0.0)
        # Generator-bound if the top passing step or the failing step measured the generator.
        bound_at_figure.append(bool((best and best["generator_bound"]) or
                                    (fail and fail["generator_bound"])))
    table = []
    for rate in sorted(steps):
        rec = steps[rate]
        table.append({"rate": rate, "dps": median(rec["dps"]), "p50": median(rec["p50"]),
                      "p99": median(rec["p99"]), "share": median(rec["share"]),
                      "us": median(rec["us"]), "passed": rec["passed"], "runs": rec["runs"],
                      "bound": rec["bound"], "gencpu": median(rec["gencpu"]),
                      "cpu": median(rec["cpu"]), "wire": median(rec["wire"]),
                      "msg": median(rec["msg"])})
    return {"steps": table, "figure": median(figures) if figures else None,
            "figures": figures, "rate": median(figure_rates) if figure_rates else None,
            "bound": any(bound_at_figure),
            "exhausted": bool(exhausted) and all(exhausted),
            "join_s": median(join_s), "settle_s": median(settle_s),
            "complete_runs": complete_runs, "reports": sum(1 for e in entries if e["report"])}


def step_at(agg, rate):
    """The medians of an aggregate_ramp() at target rate `rate`, or None if no run reached it."""
    return next((s for s in agg["steps"] if s["rate"] == rate), None)


def common_step(aggs):
    """The highest step (target rate) that every ramp of `aggs` ({name: aggregate_ramp()})
    passed in every run that reached it, so that figures read there compare the same load; None
    when there is none. Returns {name: that step's medians} and the rate."""
    passed = None
    for agg in aggs.values():
        rates = {st["rate"] for st in agg["steps"] if st["runs"] and st["passed"] == st["runs"]}
        passed = rates if passed is None else passed & rates
    if not passed:
        return None, None
    rate = max(passed)
    return {name: next(st for st in agg["steps"] if st["rate"] == rate)
            for name, agg in aggs.items()}, rate


def limited_by(agg):
    """What ended a ramp's aggregate (aggregate_ramp()), as a report says it."""
    if not agg["reports"]:
        return "n/a (no report)"
    if agg["bound"]:
        return "the generator (generator-bound)"
    if agg["exhausted"]:
        return "the ramp's top rate (a lower bound)"
    if agg["figure"] == 0:
        return "server (the first step failed)"
    return "server (next step failed)"


def aggregate_idle(entries):
    keys = {"hs": ("setup", "handshakes_per_second"), "joins": ("setup", "joins_per_second"),
            "bpc": ("server", "bytes_per_connection"), "connect_s": ("setup", "connect_seconds"),
            "join_s": ("setup", "join_seconds"), "rss_before": ("server", "rss_before_bytes"),
            "rss_hold": ("server", "rss_holding_bytes"),
            "cpu_hold": ("server", "cpu_holding_seconds")}
    out = {k: [] for k in keys}
    out["all_open"] = []
    out["closed"] = []
    out["conns"] = []
    for entry in entries:
        report = entry["report"]
        if report is None:
            continue
        for k, (section, field) in keys.items():
            out[k].append(report.get(section, {}).get(field))
        out["all_open"].append(report.get("hold", {}).get("all_open"))
        out["closed"].append(report.get("health", {}).get("closed_by_server"))
        out["conns"].append(report["setup"].get("connections_ok"))
    result = {k: median(v) for k, v in out.items() if k not in ("all_open",)}
    result["all_open"] = all(v is True for v in out["all_open"]) if out["all_open"] else None
    result["reports"] = len(out["hs"])
    return result


def read_manifest(prog, out_dir):
    """The manifest.json a driver wrote into out_dir (for --aggregate-only); dies if there is
    none."""
    from lib import procs
    try:
        return json.loads((out_dir / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        procs.die(prog, f"cannot read {out_dir / 'manifest.json'}: {e}")
