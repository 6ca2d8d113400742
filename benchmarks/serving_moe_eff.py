"""Benchmark: where the serving model's MoE correction (simulator/serving/constants.SERVING_MOE_EFF) comes from, and
how it does on rows it was not fitted on.

The MoE rows of benchmarks/published/serving_trtllm_moe.json (TensorRT-LLM Performance Overview, maximum
throughput) are split by accelerator: the H200 rows fit the constant, the H100 rows (the four of the MoE issue
among them) and the B200 rows check it. Every prediction goes through the public path. The fit: the row's scenario
on a copy of its datasheet accelerator whose `moe_gemm_eff` is the trial value (the field a calibrated device's
moe_layer fit fills, which the serving model reads in place of the constant; the copy, a device the datasheet does
not list, claims no FP4 unit, so the fit accelerator must not need one), `Scenario.from_dict` -> `evaluate`; the
fitted value is the one at which the fit rows' median ln(predicted / published) is 0 (scipy.optimize.brentq). The
check: every row as a user states it, at the shipped constant.

`python -m benchmarks.serving_moe_eff [--fit-on H200] [--rows]`
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from dataclasses import replace
from pathlib import Path
from typing import Any

from scipy.optimize import brentq

from simulator.catalog import HardwareSpec
from simulator.devices import all_devices
from simulator.evaluator import evaluate
from simulator.scenario import Scenario
from simulator.serving.constants import SERVING_MOE_EFF

ROWS = Path(__file__).parent / "published" / "serving_trtllm_moe.json"
BOUNDS = (0.05, 1.0)


def rows() -> list[dict[str, Any]]:
    return json.loads(ROWS.read_text(encoding="utf-8"))["rows"]


def _device(acc: str, eff: float) -> HardwareSpec:
    base = all_devices()[acc]
    return replace(base, id=f"{acc}-moe-{eff:.6f}", display_name=f"{base.display_name} (moe {eff:.4g})",
                   moe_gemm_eff=eff)


def log_error(row: dict[str, Any], eff: float | None) -> float:
    """ln(predicted / published) of the row, its MoE layers at `eff` (None: the shipped constant)."""
    data = json.loads(json.dumps(row["scenario"]))
    devices = None
    if eff is not None:
        dev = _device(data["serving"]["accelerator"], eff)
        data["serving"]["accelerator"] = dev.id
        devices = {dev.id: dev}
    value = float(evaluate(Scenario.from_dict(data, devices), devices=devices).value(row["figure"]))
    return math.log(value / row["published"])


def median_log(rs: list[dict[str, Any]], eff: float | None) -> float:
    return statistics.median(log_error(r, eff) for r in rs)


def fit(rs: list[dict[str, Any]]) -> float:
    """The MoE efficiency at which the rows' median log-error is 0 (the bound nearest to it when none is)."""
    lo, hi = (median_log(rs, b) for b in BOUNDS)
    if lo * hi > 0:
        return BOUNDS[0] if abs(lo) < abs(hi) else BOUNDS[1]
    return brentq(lambda e: median_log(rs, e), *BOUNDS, xtol=1e-3)


def report(name: str, rs: list[dict[str, Any]], eff: float | None, show_rows: bool) -> None:
    errs = [(r, log_error(r, eff)) for r in rs]
    rel = sorted(abs(math.expm1(e)) for _, e in errs)
    print(f"{name:<26} rows {len(rs):>3}  median ln(pred/pub) {statistics.median(e for _, e in errs):+.3f}  "
          f"median |error| {statistics.median(rel):6.1%}  worst {rel[-1]:6.1%}")
    if show_rows:
        for r, e in errs:
            print(f"    {r['id']:<58} {r['published']:>9,.0f} {math.expm1(e):+8.1%}{'  (issue)' if r.get('target') else ''}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fit-on", default="H200", help="accelerator id whose rows fit the constant (default H200)")
    ap.add_argument("--rows", action="store_true", help="print every row")
    args = ap.parse_args(argv)
    allr = rows()
    fit_rows = [r for r in allr if r["scenario"]["serving"]["accelerator"] == args.fit_on]
    eff = fit(fit_rows)
    print(f"fitted on the {len(fit_rows)} {args.fit_on} rows: {eff:.3f}; shipped SERVING_MOE_EFF {SERVING_MOE_EFF:g}"
          + ("" if abs(eff - SERVING_MOE_EFF) < 0.01 else "  (differs: update simulator/serving/constants.py)"))
    print("every row at the shipped constant:")
    for acc in sorted({r["scenario"]["serving"]["accelerator"] for r in allr}):
        part = [r for r in allr if r["scenario"]["serving"]["accelerator"] == acc]
        report(f"{'fit' if acc == args.fit_on else 'check'}: {acc}", part, None, args.rows)
    report("all", allr, None, False)
    report("the MoE issue's four rows", [r for r in allr if r.get("target")], None, True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
