"""Merge what ``bench/gpu.sh`` recorded into one JSON and one markdown summary; exit 1 if a step
or a test failed.

Reads ``LOGS/STEP.rc`` (each step's exit code; a step without one did not run), the figures
``LOGS/throughput.json`` (bench/gpu_throughput.py) and ``LOGS/cli.json`` (bench/gpu_check.py)
as far as they got, and ``LOGS/tests.xml`` (pytest's JUnit XML: each gpu test's outcome). Writes
``OUT`` (the throughput figures at the top level, as bench/run_all.py and bench/bench_decode.py
read them, plus ``cli``, ``exit_codes``, ``tests``, ``targets`` and ``seconds``) and ``OUT``
with ``.md``: the issue's targets (met, missed, or not measured), every exit code and every test.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

STEPS = ("env", "throughput", "cli", "tests")


def _json(path: Path) -> dict:
    """A step's figures, or {} when it wrote none (or half a file)."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def exit_codes(logs: Path) -> dict[str, int | None]:
    """Each step's exit code (None: it never ran; 124 or 137: its timeout)."""
    codes = {}
    for step in STEPS:
        rc = logs / f"{step}.rc"
        codes[step] = int(rc.read_text().strip()) if rc.exists() else None
    return codes


def test_outcomes(xml_path: Path) -> dict[str, str]:
    """``{"file::test": "passed" | "failed" | "error" | "skipped"}`` from pytest's JUnit XML."""
    if not xml_path.exists():
        return {}
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError:
        return {}
    out = {}
    for case in root.iter("testcase"):
        name = f"{case.get('classname', '')}::{case.get('name', '')}"
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
        out[name] = outcome
    return out


def targets(r: dict, cli: dict) -> list[tuple[str, str, str]]:
    """``(target, measured, verdict)`` of each of issue #26's targets."""

    def check(name: str, key: str, ok, fmt: str = "{:.3f}") -> tuple[str, str, str]:
        if key not in r:
            return name, "not measured", "not measured"
        return name, fmt.format(r[key]), "met" if ok(r[key]) else "missed"

    rows = [
        check("real loop >= 90 % of the model-only step rate", "loop_over_model", lambda v: v >= 0.9),
        check("DCINet step <= 1.10 x the plain network's", "dcinet_over_plain", lambda v: v <= 1.10),
        check("bf16 at least as fast as fp16 (bf16 / fp16 step time <= 1)", "bf16_over_fp16",
              lambda v: v <= 1.0),
        check("compile measured (compiled / eager step time; on by default only if < 1)",
              "compile_over_eager", lambda v: True),
        check("projected 150 epochs, hours (the real loop)", "projected_150_epochs_h",
              lambda v: True, "{:.1f}"),
    ]
    if "projected_pku_evaluate_min" in cli:
        rows.append(("projected PKU evaluation, minutes (evaluate --device cuda)",
                     f"{cli['projected_pku_evaluate_min']:.1f}", "stated"))
    else:
        rows.append(("projected PKU evaluation, minutes", "not measured", "not measured"))
    return rows


def markdown(summary: dict) -> str:
    lines = [f"# GPU check ({summary.get('device', 'no device recorded')})", "",
             f"{summary['seconds']:.0f} s of a {summary['budget_s']} s budget.", "",
             "| target | measured | verdict |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {verdict} |" for name, value, verdict in summary["targets"]]
    lines += ["", "| step | exit code |", "|---|---|"]
    lines += [f"| {step} | {'did not run' if rc is None else rc} |"
              for step, rc in summary["exit_codes"].items()]
    lines += ["", "| gpu test | outcome |", "|---|---|"]
    lines += [f"| `{name}` | {outcome} |" for name, outcome in summary["tests"].items()]
    if not summary["tests"]:
        lines.append("| (no test outcome recorded) | |")
    return "\n".join(lines) + "\n"


def summarise(logs: Path, started: float | None = None, budget: int = 480) -> dict:
    """Everything ``gpu.sh`` recorded in ``logs``, as one dict (see the module's docstring)."""
    r = _json(logs / "throughput.json")
    cli = _json(logs / "cli.json")
    summary = {**r, "cli": cli, "exit_codes": exit_codes(logs),
               "tests": test_outcomes(logs / "tests.xml"), "budget_s": budget,
               "seconds": time.time() - started if started else 0.0}
    summary["targets"] = targets(r, cli)
    return summary


def failed(summary: dict) -> list[str]:
    """What failed: steps with a non-zero (or no) exit code, and tests that did not pass or skip."""
    bad = [f"step {s} (exit {rc})" for s, rc in summary["exit_codes"].items() if rc != 0]
    bad += [f"test {t} ({o})" for t, o in summary["tests"].items() if o in ("failed", "error")]
    return bad


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("logs", type=Path)
    ap.add_argument("out", type=Path)
    ap.add_argument("--started", type=float, help="the run's start, seconds since the epoch")
    ap.add_argument("--budget", type=int, default=480)
    args = ap.parse_args(argv)
    summary = summarise(args.logs, args.started, args.budget)
    args.out.write_text(json.dumps(summary, indent=1))
    md = args.out.with_suffix(".md")
    md.write_text(markdown(summary))
    print(markdown(summary))
    bad = failed(summary)
    print(f"wrote {args.out} and {md}" + (f"; FAILED: {', '.join(bad)}" if bad else "; all passed"))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
