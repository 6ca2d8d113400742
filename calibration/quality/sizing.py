"""The quality plan sized to its budget by this machine's speed (a few timed training steps of each model)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from calibration.quality.plan import MIN_FOLDS, MIN_LM_STEPS_FRACTION, PLANS, QualityPlan, variants


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
