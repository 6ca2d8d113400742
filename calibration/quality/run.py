"""The quality calibration: train the small models per fold, compress them every planned way, measure, and fit.

Every finished (model, fold, variant) is appended, fsync'd, to `<out>/quality_points.jsonl` at once, so an
interrupt keeps it and a rerun with the same plan (`resume`) measures only what is missing (training is seeded,
so a fold retrained to finish its variants is the same model). `<out>/quality.json` is the profile's `quality`
section (docs/profile-schema.md), built from the points at the end.

The plan is sized to the budget by this machine's own speed: a few timed training steps of each model predict a
fold's cost, and the number of folds (then the LM's steps) is cut until the prediction fits.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from calibration.budgets import BUDGETS_S, QUALITY_SHARE
from calibration.profile_writer import QUALITY_NAME as SECTION_NAME  # the writer reads the section from there

POINTS_NAME, PLAN_NAME = "quality_points.jsonl", "quality_plan.json"
MIN_FOLDS = 2
MIN_LM_STEPS_FRACTION = 0.4


@dataclass(frozen=True)
class QualityPlan:
    mode: str
    seed: int = 0
    mlp_folds: int = 3
    mlp_hidden: int = 128
    mlp_epochs: int = 30
    mlp_ft_epochs: int = 3
    lm_folds: int = 3
    lm_d_model: int = 48
    lm_layers: int = 2
    lm_ctx: int = 48
    lm_batch: int = 32
    lm_steps: int = 200
    lm_ft_steps: int = 15
    corpus_chars: int = 60_000
    eval_chars: int = 4_096
    bits_rtn: tuple[int, ...] = (8, 4, 3, 2, 1)
    bits_qat: tuple[int, ...] = (4, 3, 2, 1)
    sparsities: tuple[float, ...] = (0.25, 0.5, 0.7, 0.8, 0.9, 0.95)
    sparsities_ft: tuple[float, ...] = (0.5, 0.8, 0.9, 0.95)
    scaling_sizes: tuple[int, ...] = ()  # d_model of the LMs of the scaling law (full only)
    scaling_steps: tuple[int, ...] = ()
    scaling_bootstrap: int = 100  # resamples for the law's P10/P90
    predicted_s: float | None = None
    budget_s: float | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


PLANS = {
    "quick": QualityPlan("quick"),
    "full": QualityPlan("full", mlp_folds=5, mlp_epochs=40, mlp_ft_epochs=6, lm_folds=5, lm_d_model=64, lm_ctx=64,
                        lm_steps=400, lm_ft_steps=40,
                        corpus_chars=150_000, eval_chars=20_000, bits_qat=(8, 4, 3, 2, 1),
                        sparsities=(0.25, 0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95),
                        sparsities_ft=(0.25, 0.5, 0.7, 0.8, 0.9, 0.95), scaling_sizes=(24, 32, 48, 64, 96),
                        scaling_steps=(100, 200, 400)),
    "tiny": QualityPlan("tiny", mlp_folds=2, mlp_hidden=32, mlp_epochs=3, mlp_ft_epochs=1, lm_folds=2, lm_d_model=16,
                        lm_layers=1, lm_ctx=16, lm_batch=8, lm_steps=8, lm_ft_steps=2, corpus_chars=6_000,
                        eval_chars=1_024, bits_rtn=(8, 4, 2, 1), bits_qat=(4, 2, 1), sparsities=(0.25, 0.5, 0.8, 0.9),
                        sparsities_ft=(0.5, 0.9)),
}


@dataclass(frozen=True)
class Variant:
    family: str  # "dense" | "bits" | "sparsity"
    method: str  # "none" | "rtn" | "qat" | "l1_unstructured" | "l2_rows" | "2:4"
    x: float  # bits, or sparsity (dense: 32 bits)
    finetuned: bool

    @property
    def name(self) -> str:
        return f"{self.family}/{self.method}/{self.x:g}/{'ft' if self.finetuned else 'os'}"


def variants(plan: QualityPlan) -> list[Variant]:
    out = [Variant("dense", "none", 32.0, False)]
    out += [Variant("bits", "rtn", float(b), False) for b in plan.bits_rtn]
    out += [Variant("bits", "qat", float(b), True) for b in plan.bits_qat]
    for method in ("l1_unstructured", "l2_rows"):
        out += [Variant("sparsity", method, s, False) for s in plan.sparsities]
        out += [Variant("sparsity", method, s, True) for s in plan.sparsities_ft]
    out += [Variant("sparsity", "2:4", 0.5, False), Variant("sparsity", "2:4", 0.5, True)]
    return out


# ---------------------------------------------------------------- the two tasks


class Task:
    """One small model on its data, split into k folds; `train(fold)` and `evaluate(model, fold)`."""

    name: str
    metrics: tuple[str, ...]

    def __init__(self, plan: QualityPlan, device: str) -> None:
        self.plan, self.device = plan, device

    salt: int = 0  # per task, so the two tasks never share a seed

    def seed(self, fold: int, salt: int = 0) -> int:
        return self.plan.seed * 100_003 + self.salt * 10_007 + fold * 101 + salt


class DigitsTask(Task):
    name = "digits_mlp"
    metrics = ("accuracy", "precision_macro", "recall_macro", "f1_macro")

    def __init__(self, plan: QualityPlan, device: str, folds: int) -> None:
        import torch
        from sklearn.model_selection import StratifiedKFold

        from calibration.quality.data import digits

        super().__init__(plan, device)
        x, self.y = digits()
        self.x = torch.from_numpy(x).to(device)
        self.yt = torch.from_numpy(self.y).to(device)
        self.folds = list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=plan.seed).split(x, self.y))

    def build(self, fold: int):
        import torch

        from calibration.quality.models import MLP

        torch.manual_seed(self.seed(fold))
        return MLP(64, self.plan.mlp_hidden, 10).to(self.device)

    def train(self, model, fold: int, *, finetune: bool = False, salt: int = 0):
        from calibration.quality.train import train_mlp

        idx = self.folds[fold][0]
        epochs, lr = (self.plan.mlp_ft_epochs, 1e-3) if finetune else (self.plan.mlp_epochs, 3e-3)
        return train_mlp(model, self.x[idx], self.yt[idx], epochs=epochs, lr=lr, seed=self.seed(fold, salt))

    def evaluate(self, model, fold: int) -> dict[str, float]:
        from calibration.quality.train import eval_mlp

        idx = self.folds[fold][1]
        return eval_mlp(model, self.x[idx], self.y[idx])

    def info(self, model) -> dict[str, Any]:
        n_train = int(np.mean([len(tr) for tr, _ in self.folds]))
        return {"task": "classification", "dataset": "sklearn digits",
                "architecture": f"MLP 64-{self.plan.mlp_hidden}-{self.plan.mlp_hidden}-10, ReLU",
                "params": int(sum(p.numel() for p in model.parameters())), "train_samples": n_train,
                "epochs": self.plan.mlp_epochs, "samples_trained": n_train * self.plan.mlp_epochs,
                "finetune_epochs": self.plan.mlp_ft_epochs, "cv": "StratifiedKFold (shuffled, seeded)"}


class CharLMTask(Task):
    name = "char_lm"
    salt = 1
    metrics = ("loss_nats", "perplexity")

    def __init__(self, plan: QualityPlan, device: str, folds: int) -> None:
        import torch

        from calibration.quality.data import encode, grammar_corpus

        super().__init__(plan, device)
        ids, self.alphabet = encode(grammar_corpus(plan.corpus_chars, plan.seed))
        self.ids = torch.from_numpy(ids)
        edges = np.linspace(0, len(ids), folds + 1).astype(int)
        self.chunks = list(itertools.pairwise(edges))  # k contiguous chunks, one held out per fold

    def cfg(self, d_model: int | None = None):
        from calibration.quality.models import LMConfig

        d = d_model or self.plan.lm_d_model
        return LMConfig(vocab=len(self.alphabet), d_model=d, layers=self.plan.lm_layers, heads=4 if d % 4 == 0 else 1,
                        ctx=self.plan.lm_ctx)

    def build(self, fold: int, d_model: int | None = None):
        import torch

        from calibration.quality.models import CharLM

        torch.manual_seed(self.seed(fold))
        return CharLM(self.cfg(d_model)).to(self.device)

    def split(self, fold: int):
        import torch

        a, b = self.chunks[fold]
        return torch.cat([self.ids[:a], self.ids[b:]]), self.ids[a:b]

    def train(self, model, fold: int, *, finetune: bool = False, salt: int = 0, steps: int | None = None):
        from calibration.quality.train import train_lm

        train_ids, _ = self.split(fold)
        n, lr = (self.plan.lm_ft_steps, 1e-3) if finetune else (steps or self.plan.lm_steps, 3e-3)
        return train_lm(model, train_ids, steps=n, lr=lr, seed=self.seed(fold, salt), batch=self.plan.lm_batch,
                        warmup=2 if finetune else 10)

    def evaluate(self, model, fold: int) -> dict[str, float]:
        from calibration.quality.train import eval_lm

        return eval_lm(model, self.split(fold)[1], self.plan.eval_chars)

    def info(self, model) -> dict[str, Any]:
        from calibration.quality.models import non_embedding_params

        c = self.cfg()
        return {"task": "language_model", "dataset": "generated grammar corpus",
                "architecture": f"decoder, {c.layers} layers, d_model {c.d_model}, {c.heads} heads, context {c.ctx}, "
                                f"vocabulary {c.vocab} characters",
                "params": int(sum(p.numel() for p in model.parameters())),
                "non_embedding_params": non_embedding_params(model), "corpus_chars": self.plan.corpus_chars,
                "steps": self.plan.lm_steps, "tokens_trained": self.plan.lm_steps * self.plan.lm_batch * c.ctx,
                "finetune_steps": self.plan.lm_ft_steps, "eval_chars_per_fold": self.plan.eval_chars,
                "cv": "k contiguous chunks of the corpus, one held out per fold"}


def apply_variant(task: Task, dense, fold: int, v: Variant, salt: int):
    """A compressed copy of the fold's dense model (fine-tuned when the variant says so)."""
    from calibration.quality import compress

    m = copy.deepcopy(dense)
    if v.family == "bits" and v.method == "rtn":
        return compress.quantize_model(m, int(v.x))
    if v.family == "bits":  # quantization-aware fine-tune through the straight-through estimator, then baked in
        compress.add_fake_quant(m, int(v.x))
        task.train(m, fold, finetune=True, salt=salt)
        return compress.bake_fake_quant(m)
    if v.family == "sparsity":
        compress.prune_model(m, v.method, v.x)
        if v.finetuned:
            task.train(m, fold, finetune=True, salt=salt)
        return compress.remove_masks(m)
    return m


# ---------------------------------------------------------------- plan, probe, budget


def _time_steps(fn: Callable[[], object], n: int = 3) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def probe_costs(plan: QualityPlan, device: str) -> dict[str, float]:
    """Seconds per MLP epoch and per LM training step on this machine (a second or two)."""
    import torch

    from calibration.quality.models import MLP, CharLM, LMConfig
    from calibration.quality.train import train_lm, train_mlp

    mlp = MLP(64, plan.mlp_hidden, 10).to(device)
    x, y = torch.rand(1200, 64, device=device), torch.randint(0, 10, (1200,), device=device)
    epoch_s = _time_steps(lambda: train_mlp(mlp, x, y, epochs=1, lr=1e-3, seed=0))
    lm = CharLM(LMConfig(vocab=33, d_model=plan.lm_d_model, layers=plan.lm_layers, ctx=plan.lm_ctx)).to(device)
    ids = torch.randint(0, 33, (20_000,))
    step_s = _time_steps(lambda: train_lm(lm, ids, steps=2, lr=1e-3, seed=0, batch=plan.lm_batch)) / 2
    return {"mlp_epoch_s": epoch_s, "lm_step_s": step_s}


def predicted_seconds(plan: QualityPlan, costs: dict[str, float]) -> float:
    vs = variants(plan)
    n_ft = sum(v.finetuned for v in vs)
    mlp_fold = (plan.mlp_epochs + n_ft * plan.mlp_ft_epochs) * costs["mlp_epoch_s"] + len(vs) * 0.01
    eval_steps = plan.eval_chars / (plan.lm_batch * plan.lm_ctx) / 3  # a forward pass: about a third of a step
    lm_fold = (plan.lm_steps + n_ft * plan.lm_ft_steps + len(vs) * eval_steps) * costs["lm_step_s"]
    scaling = sum(s * costs["lm_step_s"] * (d / plan.lm_d_model) ** 2 for d in plan.scaling_sizes
                  for s in plan.scaling_steps)
    return plan.mlp_folds * mlp_fold + plan.lm_folds * lm_fold + scaling + 3.0  # + data, fits and the probe


def size_plan(plan: QualityPlan, budget_s: float, costs: dict[str, float]) -> QualityPlan:
    """Fewer folds (the LM's first), then fewer LM steps, until the predicted time fits the budget."""
    notes = []
    while predicted_seconds(plan, costs) > budget_s:
        if plan.lm_folds > MIN_FOLDS and plan.lm_folds >= plan.mlp_folds:
            plan = replace(plan, lm_folds=plan.lm_folds - 1)
        elif plan.mlp_folds > MIN_FOLDS:
            plan = replace(plan, mlp_folds=plan.mlp_folds - 1)
        elif plan.lm_steps > PLANS[plan.mode].lm_steps * MIN_LM_STEPS_FRACTION and plan.lm_steps > 20:
            plan = replace(plan, lm_steps=int(plan.lm_steps * 0.8), lm_ft_steps=max(2, int(plan.lm_ft_steps * 0.8)))
        else:
            notes.append("over budget even at the fewest folds and steps")
            break
    base = PLANS[plan.mode]
    if (plan.mlp_folds, plan.lm_folds, plan.lm_steps) != (base.mlp_folds, base.lm_folds, base.lm_steps):
        notes.append(f"sized to the budget: folds {base.mlp_folds}/{base.lm_folds} -> {plan.mlp_folds}/"
                     f"{plan.lm_folds}, LM steps {base.lm_steps} -> {plan.lm_steps}")
    return replace(plan, predicted_s=round(predicted_seconds(plan, costs), 1), budget_s=budget_s, notes=tuple(notes))


# ---------------------------------------------------------------- durable points


def read_points(path: Path) -> list[dict[str, Any]]:
    out = []
    if path.exists():
        for raw in path.read_bytes().splitlines():
            try:
                rec = json.loads(raw)
            except json.JSONDecodeError:  # a line cut short by a killed run
                continue
            if isinstance(rec, dict) and isinstance(rec.get("key"), str):
                out.append(rec)
    return out


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
    budget_s = budget_s or BUDGETS_S.get(mode, 180.0) * QUALITY_SHARE
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


# ---------------------------------------------------------------- the section


CURVE_METRICS = {"digits_mlp": (("accuracy", "one_minus"), ("f1_macro", "one_minus")),
                 "char_lm": (("loss_nats", "identity"),)}
E_CAP = {"one_minus": 1.0, "identity": 20.0}
CURVE_SETS = (("bits", "rtn", False), ("bits", "qat", True), ("sparsity", "l1_unstructured", False),
              ("sparsity", "l1_unstructured", True), ("sparsity", "l2_rows", False), ("sparsity", "l2_rows", True))


def _stats(vals: list[float]) -> dict[str, float]:
    a = np.asarray(vals, dtype=float)
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if len(a) > 1 else 0.0, "n": len(a)}


def build_section(points: list[dict[str, Any]], plan: QualityPlan, infos: dict[str, dict[str, Any]],
                  law: dict[str, Any] | None, device: str) -> dict[str, Any]:
    from calibration.quality.fit import fit_curve

    table, curves = [], {}
    for model_name, metric_specs in CURVE_METRICS.items():
        pts = [p for p in points if p.get("model") == model_name]
        if not pts:
            continue
        k = max(p["folds"] for p in pts)
        pts = [p for p in pts if p["folds"] == k]
        groups: dict[tuple, dict[int, dict[str, float]]] = {}
        for p in pts:
            groups.setdefault((p["family"], p["method"], float(p["x"]), bool(p["finetuned"])), {})[p["fold"]] = \
                p["metrics"]
        for (family, method, x, ft), by_fold in sorted(groups.items()):
            names = next(iter(by_fold.values())).keys()
            table.append({"model": model_name, "family": family, "method": method, "x": x, "finetuned": ft,
                          "metrics": {n: _stats([m[n] for m in by_fold.values()]) for n in names}})
        dense = groups.get(("dense", "none", 32.0, False), {})
        for family, method, ft in CURVE_SETS:
            xs = sorted(x for (fa, me, x, f) in groups if (fa, me, f) == (family, method, ft))
            if family == "sparsity" and dense:
                xs = [0.0, *xs]
            for y_name, transform in metric_specs:
                sources = [dense if (family == "sparsity" and x == 0.0) else groups.get((family, method, x, ft), {})
                           for x in xs]
                values = np.array([[src.get(fold, {}).get(y_name, math.nan) for fold in range(k)] for src in sources])
                dense_v = np.array([dense.get(fold, {}).get(y_name, math.nan) for fold in range(k)])
                key = f"{model_name}/{family}/{method}/{'finetuned' if ft else 'oneshot'}/{y_name}"
                if len(xs) == 0 or not np.isfinite(dense_v).any():
                    curves[key] = {"status": "insufficient_data", "reason": "no measured points"}
                    continue
                rec = fit_curve(np.array(xs), values, dense_v, family=family, y_name=y_name, y_transform=transform,
                                e_cap=E_CAP[transform])
                info = infos.get(model_name, {})
                size = {"model_params": info.get("params"),  # the small model's size and what it was trained on
                        "trained": info.get("tokens_trained", info.get("samples_trained")),
                        "trained_unit": "characters" if "tokens_trained" in info else "samples"} if info else {}
                curves[key] = {"model_name": model_name, "method": method, "finetuned": ft, **size, **rec}
    return {"version": 1, "mode": plan.mode, "device": device, "seed": plan.seed,
            "provenance": "measured (points) and fitted (curves) by python -m calibration quality on this machine",
            "plan": asdict(plan), "models": infos, "table": table, "curves": curves, "scaling_law": law,
            "notes": ["quantization: every Linear weight, round-to-nearest on a symmetric per-output-channel grid "
                      "(2 bits: {-1, 0, 1}); 1 bit: sign times the row's mean |w|; biases, embeddings and LayerNorms "
                      "stay fp32. QAT: a short fine-tune through a straight-through fake-quant.",
                      "pruning: every Linear but the output head, layer by layer (torch.nn.utils.prune): L1 "
                      "unstructured, L2-norm rows (structured), 2:4 (two largest of every four inputs); "
                      "fine-tuned variants keep the mask during a short fine-tune.",
                      "curves are fitted on e = 1 - metric (accuracy, macro-F1) or e = loss (nats per character); "
                      "band: the std across per-fold fits"]}


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    from calibration.profile_writer import jsonable

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w") as f:
        json.dump(jsonable(data), f, indent=1, allow_nan=False)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
