"""Prefill and decode step times of a small decoder, per (device, dtype, model shape).

prefill: t = overhead_s + tokens * per_token_s [+ tokens * prompt * per_token_ctx_s]   (attention ~ s^2)
decode:  t = overhead_s + batch * per_seq_s + batch * context * per_kv_token_s           (KV reads ~ b*ctx)
The quadratic / KV terms are kept only if cross-validation on the training points says they pay.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from calibration.fit.common import Model, Points, fit_largest_heldout, num, usable


def _linear_model(name: str, formula: str, params: tuple[str, ...], terms: tuple[str, ...],
                  t_s: np.ndarray) -> Model:
    """t = sum(param_j * feature_j) with feature 'one' = 1; all parameters > 0, fitted as log10."""
    def predict(p: dict[str, float], f: dict[str, np.ndarray]) -> np.ndarray:
        return sum(p[name] * (1.0 if term == "one" else f[term]) for name, term in zip(params, terms, strict=True))

    t0 = float(np.median(t_s))
    start = tuple(t0 / 10 if term == "one" else t0 / 100 for term in terms)
    return Model(name, formula, params, predict, lower=(1e-15,) * len(params), upper=(100.0,) * len(params),
                 log_params=(True,) * len(params), starts=(start, tuple(s * 10 for s in start)))


def _shape_key(r: dict[str, Any]) -> str:
    p = r.get("params") or {}
    return f"{r.get('device')}/{r.get('dtype')}/L{p.get('layers')}-h{p.get('hidden')}"


def fit_prefill(rows: list[dict[str, Any]]) -> dict[str, Any]:
    groups: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for i, r in usable(rows, ["prefill"]):
        if (num(r, "prompt") or num(r, "prompt_len")) and num(r, "batch", 1.0):
            groups.setdefault(_shape_key(r), []).append((i, r))
    out = {}
    for key, items in sorted(groups.items()):
        prompt = np.array([num(r, "prompt") or num(r, "prompt_len") for _, r in items])
        tokens = prompt * np.array([num(r, "batch", 1.0) for _, r in items])
        t_s = np.array([float(r["median_s"]) for _, r in items])
        pts = Points(feats={"tokens": tokens, "tokens_x_prompt": tokens * prompt}, y=t_s, x=prompt,
                     rows=[[i] for i, _ in items],
                     extra=[{"tokens": float(tokens[j]), "per_token_s": float(t_s[j] / tokens[j])}
                            for j in range(len(items))])
        models = [
            _linear_model("prefill_linear", "t_s = overhead_s + tokens * per_token_s",
                          ("overhead_s", "per_token_s"), ("one", "tokens"), t_s),
            _linear_model("prefill_quadratic", "t_s = overhead_s + tokens * per_token_s + tokens * prompt * "
                          "per_token_ctx_s", ("overhead_s", "per_token_s", "per_token_ctx_s"),
                          ("one", "tokens", "tokens_x_prompt"), t_s),
        ]
        out[key] = fit_largest_heldout(models, pts, x_name="prompt", meta={"shape": key})
    return out


def fit_decode(rows: list[dict[str, Any]]) -> dict[str, Any]:
    groups: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for i, r in usable(rows, ["decode"]):
        if (num(r, "context") or num(r, "ctx_len")) and num(r, "batch"):
            groups.setdefault(_shape_key(r), []).append((i, r))
    out = {}
    for key, items in sorted(groups.items()):
        ctx = np.array([num(r, "context") or num(r, "ctx_len") for _, r in items])
        batch = np.array([num(r, "batch") for _, r in items])
        t_s = np.array([float(r["median_s"]) for _, r in items])
        pts = Points(feats={"batch": batch, "kv_tokens": batch * ctx}, y=t_s, x=batch * ctx,
                     rows=[[i] for i, _ in items],
                     extra=[{"batch": float(batch[j]), "context": float(ctx[j])} for j in range(len(items))])
        models = [
            _linear_model("decode_batch", "t_s = overhead_s + batch * per_seq_s", ("overhead_s", "per_seq_s"),
                          ("one", "batch"), t_s),
            _linear_model("decode_kv", "t_s = overhead_s + batch * per_seq_s + batch * context * "
                          "per_kv_token_s", ("overhead_s", "per_seq_s", "per_kv_token_s"),
                          ("one", "batch", "kv_tokens"), t_s),
        ]
        out[key] = fit_largest_heldout(models, pts, x_name="batch * context", meta={"shape": key})
    return out
