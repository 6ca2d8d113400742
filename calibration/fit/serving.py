"""Prefill and decode step times of a small decoder, per (device, dtype, model shape).

prefill: the decoder's forward as its GEMM inventory (QKV, output, FFN on batch*prompt tokens, causal
         attention, the vocabulary head), timed by the profile's GEMM fit of the same device and dtype, plus
         a memory-bound term per element moved: t = overhead_s + gemm_scale * sum(GEMM fit) + elements *
         element_bytes / elem_GBps.  The GEMM fit carries the efficiency ramp from weight-streaming (short
         prompts) to compute-bound (long ones) that a straight line in tokens cannot; a linear-in-tokens
         model stays a candidate (and the only one without a GEMM fit).
decode:  t = overhead_s + batch * per_seq_s + batch * context * per_kv_token_s           (KV reads ~ b*ctx)
The extra terms are kept only if cross-validation on the training points says they pay.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from calibration.fit.common import Model, Points, fit_largest_heldout, num, usable
from calibration.fit.compute import ELEMENT_BYTES
from simulator.profile import predict_s
from simulator.profile_models import inventory_gemm_s

INVENTORY_FORMULA = ("t_s = overhead_s + gemm_scale * sum(GEMM fit over the decoder's forward GEMMs) + "
                     "elem_elements * element_bytes / (elem_GBps * 1e9); inventory in "
                     "simulator/profile_models.py:decoder_prefill_inventory")
SHAPE = ("layers", "hidden", "heads", "vocab", "batch", "prompt")


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


def _inventory_models(t_s: np.ndarray, gemm_s: np.ndarray, elt: float, gemm: dict[str, Any],
                      elem_GBps: float | None) -> list[Model]:
    """With a block fit of the same device and dtype, its elementwise rate (fitted on forward + backward
    layers, where norms, adds and softmax weigh enough to be identified) times the prefill's elementwise
    traffic too: short prompts alone cannot tell that term from the call overhead."""
    def predict(p: dict[str, float], f: dict[str, np.ndarray]) -> np.ndarray:
        return predict_s({"model": "prefill_inventory", "params": p, "gemm_fit": gemm}, **f)

    o0 = float(np.min(np.maximum(t_s - gemm_s, 0.05 * t_s))) / 2
    if elem_GBps:
        fixed = {"element_bytes": elt, "elem_GBps": float(elem_GBps)}
        return [
            Model("prefill_inventory", INVENTORY_FORMULA, ("overhead_s",), predict, lower=(1e-7,), upper=(1.0,),
                  log_params=(True,), starts=((o0,), (o0 / 10,)), fixed={**fixed, "gemm_scale": 1.0},
                  label="prefill_inventory (gemm_scale = 1, elem_GBps from the block fit)"),
            Model("prefill_inventory", INVENTORY_FORMULA, ("overhead_s", "gemm_scale"), predict,
                  lower=(1e-7, 0.3), upper=(1.0, 5.0), log_params=(True, False),
                  starts=((o0, 1.0), (o0 / 10, 1.3), (o0, 0.8)), fixed=fixed,
                  label="prefill_inventory (gemm_scale fitted, elem_GBps from the block fit)"),
        ]
    return [
        Model("prefill_inventory", INVENTORY_FORMULA, ("overhead_s", "elem_GBps"), predict,
              lower=(1e-7, 1e-2), upper=(1.0, 1e4), log_params=(True, True),
              starts=((o0, 10.0), (o0 / 10, 30.0), (o0, 3.0)),
              fixed={"gemm_scale": 1.0, "element_bytes": elt}, label="prefill_inventory (gemm_scale = 1)"),
        Model("prefill_inventory", INVENTORY_FORMULA, ("overhead_s", "gemm_scale", "elem_GBps"), predict,
              lower=(1e-7, 0.3, 1e-2), upper=(1.0, 5.0, 1e4), log_params=(True, False, True),
              starts=((o0, 1.0, 10.0), (o0 / 10, 1.3, 30.0), (o0, 0.8, 3.0)),
              fixed={"element_bytes": elt}, label="prefill_inventory (gemm_scale fitted)"),
    ]


def fit_prefill(rows: list[dict[str, Any]], compute: dict[str, Any] | None = None) -> dict[str, Any]:
    groups: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for i, r in usable(rows, ["prefill"]):
        if (num(r, "prompt") or num(r, "prompt_len")) and num(r, "batch", 1.0):
            groups.setdefault(_shape_key(r), []).append((i, r))
    out = {}
    for key, items in sorted(groups.items()):
        prompt = np.array([num(r, "prompt") or num(r, "prompt_len") for _, r in items])
        tokens = prompt * np.array([num(r, "batch", 1.0) for _, r in items])
        t_s = np.array([float(r["median_s"]) for _, r in items])
        device, dtype = key.split("/")[:2]
        gemm_fit = ((compute or {}).get("gemm") or {}).get(f"{device}/{dtype}")
        shape = {k: np.array([num(r, k) or 0.0 for _, r in items]) for k in SHAPE}
        use_inventory = bool(gemm_fit and gemm_fit.get("status") == "ok" and all(np.all(v > 0) for v in shape.values()))
        feats = {"tokens": tokens, "tokens_x_prompt": tokens * prompt, **(shape if use_inventory else {})}
        extra = [{"tokens": float(tokens[j]), "per_token_s": float(t_s[j] / tokens[j]),
                  **({k: float(v[j]) for k, v in shape.items()} if use_inventory else {})} for j in range(len(items))]
        pts = Points(feats=feats, y=t_s, x=prompt, rows=[[i] for i, _ in items], extra=extra)
        linear = _linear_model("prefill_linear", "t_s = overhead_s + tokens * per_token_s",
                               ("overhead_s", "per_token_s"), ("one", "tokens"), t_s)
        meta: dict[str, Any] = {"shape": key}
        if use_inventory:
            elt = float(ELEMENT_BYTES.get(dtype, 4))
            gemm = {"model": gemm_fit["model"], "params": dict(gemm_fit["params"])}
            gemm_s = np.asarray(inventory_gemm_s({"model": "prefill_inventory", "params": {"element_bytes": elt},
                                                  "gemm_fit": gemm}, **shape), dtype=float)
            for j, e in enumerate(extra):
                e["gemm_s"] = float(gemm_s[j])
            block = ((compute or {}).get("block_fwd_bwd") or {}).get(f"{device}/{dtype}") or {}
            elem = (block.get("params") or {}).get("elem_GBps") if block.get("model") == "block_inventory" else None
            # the inventory only: it extrapolates on the separately measured GEMM fit, while a line in tokens,
            # fitted to short prompts, misses the attention's quadratic growth (development machine, held-out
            # prompts 512 and 1024: the line 14-26% low in four runs, the GEMM-timed inventory within 7-8%)
            models = _inventory_models(t_s, gemm_s, elt, gemm, elem)
            meta.update(gemm_fit=gemm, gemm_fit_source=f"fits.compute.gemm.{device}/{dtype}")
            if elem:
                meta["elem_GBps_source"] = f"fits.compute.block_fwd_bwd.{device}/{dtype}"
        else:
            models = [linear, _linear_model(
                "prefill_quadratic", "t_s = overhead_s + tokens * per_token_s + tokens * prompt * per_token_ctx_s",
                ("overhead_s", "per_token_s", "per_token_ctx_s"), ("one", "tokens", "tokens_x_prompt"), t_s)]
        out[key] = fit_largest_heldout(models, pts, x_name="prompt", meta=meta)
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
