"""Training, fine-tuning and evaluation of the small models (seeded; CPU, or the GPU when one is present).

Classification metrics are scikit-learn's (accuracy, macro precision, recall and F1); the LM's is the mean
cross-entropy in nats per character on held-out text (perplexity = exp of it)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from calibration.quality.models import MLP, CharLM


def seed_all(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score

    return {"accuracy": float(accuracy_score(y_true, y_pred)),
            "precision_macro": float(precision_score(y_true, y_pred, average="macro", zero_division=0)),
            "recall_macro": float(recall_score(y_true, y_pred, average="macro", zero_division=0)),
            "f1_macro": float(f1_score(y_true, y_pred, average="macro", zero_division=0))}


def train_mlp(model: MLP, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float, seed: int,
              batch: int = 64) -> MLP:
    gen = seed_all(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for i in range(0, len(x), batch):
            idx = order[i:i + batch]
            opt.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    model.eval()
    return model


@torch.no_grad()
def eval_mlp(model: MLP, x: torch.Tensor, y: np.ndarray) -> dict[str, float]:
    model.eval()
    pred = model(x).argmax(dim=1).cpu().numpy()
    return classification_metrics(y, pred)


def lm_batches(ids: torch.Tensor, ctx: int, batch: int, steps: int, gen: torch.Generator):
    """`steps` batches of random windows of ctx + 1 characters."""
    for _ in range(steps):
        start = torch.randint(0, len(ids) - ctx - 1, (batch,), generator=gen)
        win = torch.stack([ids[s:s + ctx + 1] for s in start.tolist()])
        yield win[:, :-1], win[:, 1:]


def train_lm(model: CharLM, ids: torch.Tensor, *, steps: int, lr: float, seed: int, batch: int = 32,
             warmup: int = 10) -> CharLM:
    gen = seed_all(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    # nanoGPT's schedule: linear warm-up, then cosine decay to a tenth (Loshchilov & Hutter 2017, eq. 5)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: min(1.0, (t + 1) / warmup) * (
        0.1 + 0.45 * (1 + math.cos(math.pi * min(1.0, t / max(1, steps))))))
    model.train()
    dev = next(model.parameters()).device
    for xb, yb in lm_batches(ids, model.cfg.ctx, batch, steps, gen):
        xb, yb = xb.to(dev), yb.to(dev)
        opt.zero_grad(set_to_none=True)
        logits = model(xb)
        nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), yb.reshape(-1)).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
    model.eval()
    return model


@torch.no_grad()
def eval_lm(model: CharLM, ids: torch.Tensor, max_chars: int | None = None) -> dict[str, float]:
    """Mean cross-entropy (nats per character) over non-overlapping windows of the held-out text."""
    model.eval()
    ctx = model.cfg.ctx
    n = (min(len(ids), max_chars or len(ids)) - 1) // ctx
    if n < 1:
        raise ValueError(f"held-out text of {len(ids)} characters is shorter than one window of {ctx + 1}")
    dev = next(model.parameters()).device
    x = ids[: n * ctx].reshape(n, ctx).to(dev)
    y = ids[1: n * ctx + 1].reshape(n, ctx).to(dev)
    total = 0.0
    for i in range(0, n, 256):
        logits = model(x[i:i + 256])
        total += float(nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y[i:i + 256].reshape(-1),
                                       reduction="sum"))
    loss = total / (n * ctx)
    return {"loss_nats": loss, "perplexity": math.exp(loss)}
