"""The two small models on their data, split into folds: trained, compressed into a variant, evaluated."""

from __future__ import annotations

import copy
import itertools
from typing import Any

import numpy as np

from calibration.quality.plan import QualityPlan, Variant


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
