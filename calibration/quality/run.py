"""The quality calibration: train the small models per fold, compress them every planned way, measure, and fit.

Every finished (model, fold, variant) is appended, fsync'd, to `<out>/quality_points.jsonl` at once, so an
interrupt keeps it and a rerun with the same plan (`resume`) measures only what is missing (training is seeded,
so a fold retrained to finish its variants is the same model). `<out>/quality.json` is the profile's `quality`
section (docs/profile-schema.md), built from the points at the end.

The plan is sized to the budget by this machine's own speed: a few timed training steps of each model predict a
fold's cost, and the number of folds (then the LM's steps) is cut until the prediction fits (sizing.py).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from calibration.budgets import BUDGETS_S, DATA_ORDER_SHARE, quality_part_share
from calibration.profile_writer import QUALITY_NAME as SECTION_NAME  # the writer reads the section from there
from calibration.quality.plan import PLANS, QualityPlan, variants
from calibration.quality.records import read_points
from calibration.quality.section import build_section, write_json_atomic
from calibration.quality.sizing import probe_costs, size_plan
from calibration.quality.tasks import CharLMTask, DigitsTask, apply_variant

POINTS_NAME, PLAN_NAME = "quality_points.jsonl", "quality_plan.json"


def _plan_for(out: Path, mode: str, budget_s: float, device: str, resume: bool, log: Callable[[str], None]
              ) -> QualityPlan:
    path = out / PLAN_NAME
    if resume and path.exists():
        data = json.loads(path.read_text())
        data = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return QualityPlan(**data)
    plan = PLANS[mode]
    if mode != "tiny":
        costs = probe_costs(plan, device)
        plan = size_plan(plan, budget_s, costs)
        log(f"quality plan: digits {plan.mlp_folds} folds, char LM {plan.lm_folds} folds x {plan.lm_steps} steps, "
            f"{len(variants(plan))} variants each; predicted {plan.predicted_s:.0f} s of {budget_s:.0f} s "
            f"(probe: MLP epoch {costs['mlp_epoch_s'] * 1e3:.0f} ms, LM step {costs['lm_step_s'] * 1e3:.0f} ms)")
    out.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(plan), indent=1))
    tmp.replace(path)
    return plan


def run_quality(out: Path, mode: str, *, budget_s: float | None = None, resume: bool = False,
                device: str | None = None, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Measure (what is not yet in `out/quality_points.jsonl`), fit, write `out/quality.json`; returns the section."""
    import torch

    log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    out = Path(out)
    budget_s = budget_s or BUDGETS_S.get(mode, 180.0) * quality_part_share(mode)
    threads = torch.get_num_threads()
    if device == "cpu":  # models this small train 10-50x faster on one thread than on two busy cores
        torch.set_num_threads(1)
    try:
        return _run(out, mode, budget_s, device, resume, log, t0)
    finally:
        torch.set_num_threads(threads)


def _run(out: Path, mode: str, budget_s: float, device: str, resume: bool, log: Callable[[str], None],
         t0: float) -> dict[str, Any]:
    from calibration.rows import append_lines

    # --full: the data-order measurement's part of the budget, after the curves
    order_s = budget_s * DATA_ORDER_SHARE.get(mode, 0.0) / quality_part_share(mode)
    budget_s -= order_s
    plan = _plan_for(out, mode, budget_s, device, resume, log)
    points_path = out / POINTS_NAME
    if not resume:
        points_path.unlink(missing_ok=True)
    done = {r["key"] for r in read_points(points_path)}
    vs = variants(plan)
    infos: dict[str, dict[str, Any]] = {}
    for task in (DigitsTask(plan, device, plan.mlp_folds), CharLMTask(plan, device, plan.lm_folds)):
        k = len(task.folds) if isinstance(task, DigitsTask) else len(task.chunks)
        for fold in range(k):
            keys = {v.name: f"{task.name}/fold{fold}of{k}/{v.name}" for v in vs}
            dense = task.build(fold)
            if fold == 0:
                infos[task.name] = {**task.info(dense), "folds": k}
            todo = [v for v in vs if keys[v.name] not in done]
            if not todo:
                continue
            t_fold = time.perf_counter()
            task.train(dense, fold)
            for salt, v in enumerate(vs, start=1):
                if v not in todo:
                    continue
                t_v = time.perf_counter()
                m = apply_variant(task, dense, fold, v, salt)
                rec = {"key": keys[v.name], "model": task.name, "fold": fold, "folds": k, **asdict(v),
                       "metrics": task.evaluate(m, fold), "seconds": round(time.perf_counter() - t_v, 4)}
                append_lines(points_path, [rec], "a quality point")
            log(f"quality: {task.name} fold {fold + 1}/{k}: {len(todo)} variants in "
                f"{time.perf_counter() - t_fold:.1f} s (total {time.perf_counter() - t0:.1f} s)")
    law = None
    if plan.scaling_sizes:
        law = _scaling_runs(plan, device, out, done, log)
    section = build_section(read_points(points_path), plan, infos, law, device)
    if order_s > 0:  # on the CPU with gloo whatever the device: it counts updates, not seconds
        from calibration.quality.data_order import PLANS as ORDER_PLANS
        from calibration.quality.data_order import run_data_order

        section["data_order"] = run_data_order(out, ORDER_PLANS[mode], order_s, resume=resume, log=log)
    earlier = _earlier_runs_s(out / SECTION_NAME) if resume else []
    section["runs_s"] = [*earlier, round(time.perf_counter() - t0, 2)]  # a resumed run adds to what came before
    section["duration_s"] = round(sum(section["runs_s"]), 2)
    write_json_atomic(out / SECTION_NAME, section)
    log(f"quality: done in {section['duration_s']:.1f} s; section -> {out / SECTION_NAME}")
    return section


def _earlier_runs_s(path: Path) -> list[float]:
    """The durations of the invocations that wrote the section being resumed (none when it is missing)."""
    try:
        runs = json.loads(path.read_text()).get("runs_s") or []
    except (OSError, ValueError, AttributeError):
        return []
    return [float(r) for r in runs if isinstance(r, int | float)]


def _scaling_runs(plan: QualityPlan, device: str, out: Path, done: set[str], log: Callable[[str], None]
                  ) -> dict[str, Any]:
    """The char LM at several widths and step counts on fold 0's split; then L(N, D) fitted."""
    from calibration.quality.fit import fit_scaling_law
    from calibration.quality.models import non_embedding_params
    from calibration.rows import append_lines

    task = CharLMTask(plan, device, plan.lm_folds)
    path = out / POINTS_NAME
    for d in plan.scaling_sizes:
        for steps in plan.scaling_steps:
            key = f"scaling/d{d}/steps{steps}"
            if key in done:
                continue
            m = task.train(task.build(0, d), 0, steps=steps)
            rec = {"key": key, "model": "char_lm_scaling", "d_model": d, "steps": steps,
                   "params": non_embedding_params(m), "tokens": steps * plan.lm_batch * plan.lm_ctx,
                   "metrics": task.evaluate(m, 0)}
            append_lines(path, [rec], "a scaling-law point")
            log(f"quality: scaling law d_model {d}, {steps} steps: loss {rec['metrics']['loss_nats']:.3f}")
    pts = [r for r in read_points(path) if r.get("model") == "char_lm_scaling"]
    return fit_scaling_law(np.array([r["params"] for r in pts]), np.array([r["tokens"] for r in pts]),
                           np.array([r["metrics"]["loss_nats"] for r in pts]), seed=plan.seed,
                           n_boot=plan.scaling_bootstrap)
