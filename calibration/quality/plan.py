"""What the quality calibration measures: its plan per mode (models, folds, steps) and the compressed variants."""

from __future__ import annotations

from dataclasses import dataclass, field

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
