"""`python -m calibration run --quick` (and `--full`) as a user runs it: wall time, peak memory and points per bench.

Run: python -m benchmarks.calibration_quick [--slow-dtype bf16] [--full] [--validate] [--keep DIR] [--markdown]

Each run is a subprocess (`python -m calibration run --quick --out TMP`) started from this checkout; its peak
resident memory is the largest of the runner and its torchrun workers (os.wait4's ru_maxrss, which covers the
process and the descendants it waited for). The points per bench are the rows in the run's rows.jsonl by status;
the plan's predicted duration is parsed from the run's own `plan:` line. `--slow-dtype bf16` sets the probe's
test hook MODELFOLIO_PROBE_SLOW_DTYPE (a CPU without fast bf16: the dtype is marked emulated and measured at a few
points). `--validate` also runs `python -m calibration validate PROFILE` and reports its overall MAPE (about as
long again as the run). Timings from a shared machine are noisy: the report says the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from calibration.rows import step_key

REPO = Path(__file__).resolve().parents[1]
QUICK_TARGET_S = 180.0  # issue 9: a quick run within 3 minutes
BUDGET_SLACK = 1.10  # issue 23: a run within its budget + 10%
PEAK_TARGET_MB = 2048.0  # issue 9: a quick run peaks at <= 2 GB


def _loadavg() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def run_quick(out: Path, slow_dtype: str | None = None, extra: list[str] | None = None, mode: str = "quick"
              ) -> dict[str, Any]:
    """One `calibration run --quick` (`mode` "full": `--full`) into `out`: wall seconds, peak RSS (MB), exit status,
    points per bench."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    env.pop("MODELFOLIO_CALIB_GRID", None)
    env.pop("MODELFOLIO_PROBE_SLOW_DTYPE", None)
    if slow_dtype:
        env["MODELFOLIO_PROBE_SLOW_DTYPE"] = slow_dtype
    cmd = [sys.executable, "-m", "calibration", "run", f"--{mode}", "--out", str(out), "--progress", "bar",
           *(extra or [])]
    load_before = _loadavg()
    t0 = time.perf_counter()
    with (out.parent / f"{out.name}.stderr.log").open("w") as err, \
            (out.parent / f"{out.name}.stdout.log").open("w") as so:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=so, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall_s = time.perf_counter() - t0
    stderr = (out.parent / f"{out.name}.stderr.log").read_text(errors="replace")
    plan = re.search(r"plan: (\d+) steps, predicted (\d+) s", stderr)
    rows = [json.loads(line) for line in (out / "rows.jsonl").read_text().splitlines() if line.strip()] \
        if (out / "rows.jsonl").exists() else []
    by_bench: dict[str, Counter[str]] = {}
    for r in rows:
        by_bench.setdefault(r["bench"], Counter())[r["status"]] += 1
    profile = out / "profile.json"
    emulated = None
    if profile.exists():
        emulated = ",".join(json.loads(profile.read_text()).get("environment", {}).get("emulated") or []) or None
    pace = json.loads((out / "pace.json").read_text()) if (out / "pace.json").exists() else None
    return {"rc": proc.returncode, "wall_s": round(wall_s, 1), "peak_rss_MB": round(usage.ru_maxrss / 1024, 1),
            "pace": None if pace is None else planned_vs_measured(pace, rows),
            "planned_steps": int(plan.group(1)) if plan else None,
            "predicted_s": int(plan.group(2)) if plan else None,
            "points": {b: dict(c) for b, c in sorted(by_bench.items())}, "profile": str(profile) if
            profile.exists() else None, "emulated": emulated, "slow_dtype": slow_dtype,
            "load_before": load_before, "load_after": _loadavg()}


def planned_vs_measured(pace: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """From the run's pace.json: each stage's planned and measured seconds, and per local bench the planned
    seconds of the points it measured against their measured seconds (warm-up + samples × calls per sample ×
    median: what the rows record; the preparation of the operands is not in the rows) and the points left out."""
    planned_pt = {p["key"]: p["predicted_point_s"] for p in pace["points"]}
    benches: dict[str, dict[str, float]] = {}
    for r in rows:
        key = step_key(r)
        if key not in planned_pt:
            continue
        b = benches.setdefault(r["bench"], {"planned_s": 0.0, "measured_s": 0.0, "points": 0, "left_out": 0})
        if r["status"] == "ok":
            extra = r.get("extra") or {}
            b["planned_s"] += planned_pt[key]
            b["measured_s"] += float(extra.get("warmup_s", 0.0)) + r["repeats"] * int(extra.get("inner", 1)) * \
                float(r["median_s"] or 0.0)
            b["points"] += 1
        elif r["status"] == "skipped":
            b["left_out"] += 1
    return {"stages": {k: [pace["planned_s"].get(k), v] for k, v in pace["measured_s"].items()},
            "benches": {k: {kk: round(vv, 2) for kk, vv in v.items()} for k, v in sorted(benches.items())},
            "budget_s": pace["budget_s"], "ratio": (pace.get("pace") or {}).get("measured_over_planned_time")}


def run_validate(profile: Path, out: Path) -> dict[str, Any]:
    """`calibration validate PROFILE --out table.md`: its headline MAPE (the fits the plans use) and wall seconds."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "calibration", "validate", str(profile), "--out",
                           str(out / "validate.md")], cwd=REPO, env=env, capture_output=True, text=True)
    table = out / "validate.md"
    text = done.stdout + done.stderr + (table.read_text(errors="replace") if table.exists() else "")
    overall = re.search(r"Headline MAPE \(what the plans use: [^)]*\): ([\d.]+)%", text)
    return {"rc": done.returncode, "wall_s": round(time.perf_counter() - t0, 1),
            "mape_pct": float(overall.group(1)) if overall else None, "tail": text.strip().splitlines()[-3:]}


def markdown(results: list[dict[str, Any]]) -> str:
    benches = sorted({b for r in results for b in r["points"]})
    lines = ["| run | exit | wall s | peak RSS MB | predicted s | emulated | validate MAPE % | load 1m before/after |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results:
        v = r.get("validate") or {}
        lines.append(f"| {r['name']} | {r['rc']} | {r['wall_s']} | {r['peak_rss_MB']} | {r['predicted_s']} | "
                     f"{r['emulated'] or '-'} | {v.get('mape_pct', '-') if v else '-'} | "
                     f"{r['load_before']} / {r['load_after']} |")
    lines += ["", "| bench | " + " | ".join(r["name"] for r in results) + " |",
              "|---|" + "---|" * len(results)]
    for b in benches:
        cells = []
        for r in results:
            c = r["points"].get(b, {})
            cells.append(" ".join(f"{n} {s}" for s, n in sorted(c.items())) or "-")
        lines.append(f"| {b} | " + " | ".join(cells) + " |")
    for r in results:
        pace = r.get("pace")
        if not pace:
            continue
        lines += ["", f"Planned against measured, {r['name']} (budget {pace['budget_s']:.0f} s, points so far at "
                  f"{pace['ratio']}x their planned time):", "", "| stage | planned s | measured s |", "|---|---|---|"]
        for stage, (planned, measured) in pace["stages"].items():
            lines.append(f"| {stage} | {planned:.0f} | {measured:.0f} |")
        lines.append(f"| whole run (wall) | {pace['budget_s']:.0f} (budget) | {r['wall_s']:.0f} |")
        lines += ["", "| local bench | points | left out | planned s | measured s (warm-up + samples) | measured ÷ planned |",
                  "|---|---|---|---|---|---|"]
        for bench, b in pace["benches"].items():
            ratio = b["measured_s"] / b["planned_s"] if b["planned_s"] else float("nan")
            lines.append(f"| {bench} | {b['points']:.0f} | {b['left_out']:.0f} | {b['planned_s']:.1f} | "
                         f"{b['measured_s']:.1f} | {ratio:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--slow-dtype", default=None, help="also run with MODELFOLIO_PROBE_SLOW_DTYPE set to this")
    ap.add_argument("--only-slow", action="store_true", help="run only the --slow-dtype run")
    ap.add_argument("--full", action="store_true", help="also a --full run (about 15 minutes)")
    ap.add_argument("--validate", action="store_true", help="validate each profile too (about as long again)")
    ap.add_argument("--keep", type=Path, default=None, help="keep the runs in this folder (default: a temp dir)")
    ap.add_argument("--markdown", action="store_true", help="print the tables as markdown (docs/benchmarks.md)")
    ns = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="modelfolio-bench-quick-") as tmp:
        base = ns.keep or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        plans = ([] if ns.only_slow and ns.slow_dtype else [("quick", None)]) + \
            ([(f"quick, {ns.slow_dtype} slowed", ns.slow_dtype)] if ns.slow_dtype else []) + \
            ([("full", None)] if ns.full else [])
        results = []
        for name, slow in plans:
            out = base / re.sub(r"\W+", "-", name).strip("-")
            r = {"name": name, **run_quick(out, slow, mode="full" if name == "full" else "quick")}
            if ns.validate and r["profile"]:
                r["validate"] = run_validate(Path(r["profile"]), out)
            results.append(r)
            print(json.dumps(r), flush=True)
    if ns.markdown:
        print(markdown(results))
    bad = [r["name"] for r in results if r["rc"] != 0 or r["peak_rss_MB"] > PEAK_TARGET_MB]
    if bad:
        print(f"over target or failed (exit status, peak > {PEAK_TARGET_MB:.0f} MB): {', '.join(bad)}", file=sys.stderr)
    slow = [r["name"] for r in results if r["pace"] and r["wall_s"] > BUDGET_SLACK * r["pace"]["budget_s"]]
    if slow:
        print(f"longer than their budget + 10% (on a shared machine, see the load): {', '.join(slow)}",
              file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
