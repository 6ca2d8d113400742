"""Predict Megatron-LM Table 1 (Narayanan et al. 2021) through the public path; report the error.

Run: python -m benchmarks.megatron_fidelity

Each Table 1 row is a published row of benchmarks/published/training_throughput.json (group narayanan2021, the
one copy of the scenarios): the settings of the 2021 runs (A100-80GB-SXM from the hardware catalog, fp16, no
FlashAttention, no sequence parallelism, full recomputation, no ZeRO, goodput overheads off, vocabulary 51200,
sequence 2048, GELU with ffn = 4h, micro-batch and interleave from run_table_1.sh, its DDP implementation for the
gradient-sync overlap) and is evaluated as a user would: `python -m simulator evaluate FILE.json`
(`via="cli"`, what `main` prints) or `evaluate(Scenario.from_dict(...))` (`via="api"`, the same public Python
API, which the tests use for speed). `training.hw_tflops_per_gpu` of the plan is compared with the table.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

REPO = Path(__file__).resolve().parents[1]
A100 = "A100-80GB-SXM"

# Narayanan et al. 2021 Table 1: the rows of group "narayanan2021" in benchmarks/published/training_throughput.json,
# the one copy of the scenarios and the published figures (micro-batch and interleave from Megatron-LM
# examples/academic_paper_scripts/sc21/run_table_1.sh)
TABLE1_SET, TABLE1_GROUP = "training_throughput", "narayanan2021"


# Megatron-LM 2021 (Narayanan 2021 §5): fp16, full recomputation, gradients all-reduced after the backward
# pass (no DP overlap), no sequence parallelism, ZeRO or FlashAttention; dedicated cluster; peak throughput
# (no checkpoint/failure overheads); the settings of the Table 1 rows, used for the §5.1 GPT-3 estimate
RUN_2021 = {
    "training": {"precision": "fp16", "flash_attention": False, "sequence_parallel": False, "recompute": "full",
                 "zero_stage": 0},
    "cluster": {"accelerator": A100, "dp_overlap": 0, "straggler_cv": 0},
    "goodput": {"enabled": False},
}


def _merge(*parts: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for part in parts:
        for section, values in part.items():
            out.setdefault(section, {}).update(values)
    return out


def table1_rows() -> list[dict[str, Any]]:
    """The published Table 1 rows (scenario, figure, published value), in the paper's order."""
    from benchmarks.published_rows import load_sets

    return [r for r in load_sets(TABLE1_SET) if r["group"] == TABLE1_GROUP]


def load_table1(rows: Sequence[Mapping[str, Any]] | None = None) -> dict[str, np.ndarray]:
    """Table 1 as columns (the CSV's names) read from the published rows' scenarios and figures."""
    rows = table1_rows() if rows is None else rows
    paths = {"heads": ("model", "heads"), "hidden": ("model", "hidden"), "layers": ("model", "layers"),
             "tp": ("cluster", "tp"), "pp": ("cluster", "pp"), "gpus": ("cluster", "gpus"),
             "global_batch": ("training", "global_batch_seqs"), "micro_batch": ("training", "micro_batch_seqs"),
             "interleave": ("training", "interleave"), "seq_len": ("model", "seq_len"), "vocab": ("model", "vocab")}
    t = {key: np.array([float(r["scenario"][a][b]) for r in rows]) for key, (a, b) in paths.items()}
    t["tflops_per_gpu"] = np.array([float(r["published"]) for r in rows])
    return t


def table1_scenario(i: int, accelerator: str = A100) -> dict[str, dict[str, Any]]:
    """Scenario JSON of Table 1 row `i` (0-based) as published in the set, on `accelerator`."""
    scenario = copy.deepcopy(table1_rows()[i]["scenario"])
    scenario["cluster"]["accelerator"] = accelerator
    return scenario


def evaluate_api(scenarios: Sequence[Mapping[str, Any]], devices: Mapping[str, Any] | None = None) -> list[dict]:
    """Plans (as `Plan.to_dict()`, what the CLI prints) by the public Python API."""
    from simulator import Scenario, evaluate

    return [evaluate(Scenario.from_dict(s, devices), devices).to_dict() for s in scenarios]


def _cli(scenario: Mapping[str, Any]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scenario.json"
        path.write_text(json.dumps(scenario, indent=2), encoding="utf-8")
        run = subprocess.run([sys.executable, "-m", "simulator", "evaluate", str(path)], cwd=REPO,
                             capture_output=True, text=True, check=False)
    if run.returncode != 0:
        raise RuntimeError(f"python -m simulator evaluate failed ({run.returncode}): {run.stderr.strip()}")
    return json.loads(run.stdout)


def evaluate_cli(scenarios: Sequence[Mapping[str, Any]]) -> list[dict]:
    """Plans by `python -m simulator evaluate FILE.json`, one subprocess per scenario (as many at once as CPUs)."""
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return list(pool.map(_cli, scenarios))


def training_figures(plans: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    """The plans' `training` section as arrays, one element per plan (hw_tflops_per_gpu, gemm_efficiency, ...)."""
    return {key: np.array([float(p["training"][key]) for p in plans]) for key in plans[0]["training"]}


def predict(t: dict[str, np.ndarray] | None = None, via: str = "api", devices: Mapping[str, Any] | None = None,
            accelerator: str = A100):
    """(table, plan figures of the training section, signed error % of hw TFLOP/s per GPU against the table)."""
    t = load_table1() if t is None else t
    scenarios = [table1_scenario(i, accelerator) for i in range(len(t["hidden"]))]
    if via == "cli":
        if devices:
            raise ValueError("the CLI knows the catalog's and the shipped profiles' devices only")
        plans = evaluate_cli(scenarios)
    else:
        plans = evaluate_api(scenarios, devices)
    out = training_figures(plans)
    measured = t["tflops_per_gpu"]
    error_pct = 100.0 * (out["hw_tflops_per_gpu"] - measured) / measured
    return t, out, error_pct


# ---------------------------------------------------------------- the catalog's A100 and the model's reference one

def catalog_vs_examples() -> list[tuple[str, float, float]]:
    """(figure, catalog value, `simulator.training.examples.A100_80GB` value) for each figure that differs."""
    from simulator.devices import get_accelerator
    from simulator.training.examples import A100_80GB

    spec = get_accelerator(A100)
    pairs = {
        "peak_tflops fp16": (spec.peak_for("fp16"), A100_80GB["peak_tflops"]),
        "hbm_GB": (spec.hbm_GB, A100_80GB["hbm_GB"]),
        "hbm_GBps": (spec.hbm_GBps, A100_80GB["hbm_GBps"]),
        "intra_node_GBps": (spec.intra_node_GBps, A100_80GB["intra_GBps"]),
        "intra_node_latency_us": (spec.intra_node_latency_s * 1e6, A100_80GB["intra_latency_s"] * 1e6),
        "inter_node_GBps": (spec.inter_node_GBps, A100_80GB["inter_GBps"]),
        "inter_node_latency_us": (spec.inter_node_latency_s * 1e6, A100_80GB["inter_latency_s"] * 1e6),
        "gpus_per_node": (float(spec.gpus_per_node), A100_80GB["gpus_per_node"]),
        "tdp_W": (spec.tdp_W, A100_80GB["tdp_W"]),
        "gpu_hour_usd": (spec.gpu_hour_usd, A100_80GB["gpu_hour_usd"]),
    }
    return [(name, float(a), float(b)) for name, (a, b) in pairs.items() if not np.isclose(a, b, rtol=1e-9)]


def examples_a100_device():
    """The catalog's A100 with the links of `examples.A100_80GB` (what the benchmark used before it went through
    the public path), as a user's own device under another id: `evaluate(..., devices={id: spec})`."""
    from simulator.devices import get_accelerator
    from simulator.training.examples import A100_80GB

    spec = get_accelerator(A100)
    return dataclasses.replace(
        spec, id="A100-80GB-SXM-examples", display_name=spec.display_name + " (examples.A100_80GB links)",
        intra_node_GBps=A100_80GB["intra_GBps"], intra_node_latency_s=A100_80GB["intra_latency_s"],
        inter_node_GBps=A100_80GB["inter_GBps"], inter_node_latency_s=A100_80GB["inter_latency_s"],
        hbm_GBps=A100_80GB["hbm_GBps"], hbm_GB=A100_80GB["hbm_GB"],
        peak_tflops={**spec.peak_tflops, "fp16": A100_80GB["peak_tflops"]})


# ---------------------------------------------------------------- calibration check (one constant fitted)

FIT_ID = "A100-80GB-SXM-fit"


def _fit_device(eff: float):
    from simulator.devices import get_accelerator

    return dataclasses.replace(get_accelerator(A100), id=FIT_ID, display_name="A100 80GB, fitted GEMM efficiency",
                               gemm_eff_max=float(eff), provenance="fitted")


def _fit_errors(t: dict[str, np.ndarray], eff: float, rows: np.ndarray, scenarios: list) -> np.ndarray:
    """Error % of `rows` with the large-GEMM efficiency `eff` (a device as a calibration profile gives it),
    through the resolver and the model families `evaluate` uses (without its P10-P90 rows, for speed)."""
    from simulator.evaluator import scenario_rows
    from simulator.sweeps import evaluate_columns

    devices = {FIT_ID: _fit_device(eff)}
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        out = evaluate_columns(scenario_rows([scenarios[i] for i in rows], devices))
    measured = t["tflops_per_gpu"][rows]
    return 100.0 * (out["training.hw_tflops_per_gpu"] - measured) / measured


def _fit_eff_max(t: dict[str, np.ndarray], rows: np.ndarray, scenarios: list) -> float:
    """Least-squares fit of the large-GEMM efficiency alone (log error) on the given rows."""
    def loss(eff):
        return float(np.sum(np.log1p(_fit_errors(t, eff, rows, scenarios) / 100.0) ** 2))

    return float(minimize_scalar(loss, bounds=(0.5, 0.99), method="bounded").x)


def leave_one_out(t: dict[str, np.ndarray] | None = None) -> tuple[float, np.ndarray]:
    """Calibration check: fit gemm_eff_max on all rows, and on 9 rows to predict the 10th."""
    from simulator import Scenario

    t = load_table1() if t is None else t
    n = len(t["hidden"])
    devices = {FIT_ID: _fit_device(0.8)}
    scenarios = [Scenario.from_dict(table1_scenario(i, FIT_ID), devices) for i in range(n)]
    fitted = _fit_eff_max(t, np.arange(n), scenarios)
    loo = np.empty(n)
    for i in range(n):
        eff = _fit_eff_max(t, np.delete(np.arange(n), i), scenarios)
        loo[i] = _fit_errors(t, eff, np.array([i]), scenarios)[0]
    return fitted, loo


# ---------------------------------------------------------------- other published runs, same path

def gpt3_175b_scenario() -> dict[str, dict[str, Any]]:
    """GPT-3 175B (preset: Brown et al. 2020) on 1024 A100, 300B tokens; the layout is not in the paper:
    tp 8, pp 8, dp 16, batch 1536, micro-batch 1, interleave 2 assumed."""
    return _merge(RUN_2021, {"model": {"preset": "gpt3-175b"},
                             "training": {"tokens": 300e9, "global_batch_seqs": 1536, "micro_batch_seqs": 1,
                                          "interleave": 2},
                             "cluster": {"gpus": 1024, "tp": 8, "pp": 8}})


def one_t_scenario() -> dict[str, dict[str, Any]]:
    """The 1T model of Table 1 row 10 on 450B tokens (Narayanan §5.1)."""
    return _merge(table1_scenario(len(table1_rows()) - 1), {"training": {"tokens": 450e9}})


def llama65b_scenario() -> dict[str, dict[str, Any]]:
    """LLaMA-65B on 2048 A100-80GB (Touvron et al. 2023 §2.4): the published row of training_throughput.json
    (layout assumed there, see its note)."""
    from benchmarks.published_rows import load_sets

    return next(r["scenario"] for r in load_sets(TABLE1_SET) if r["id"] == "llama1-65b-throughput")


def _others(via: str) -> list[dict]:
    scenarios = [gpt3_175b_scenario(), one_t_scenario(), llama65b_scenario()]
    return evaluate_cli(scenarios) if via == "cli" else evaluate_api(scenarios)


def section_5_1_days(via: str = "api", plans: Sequence[Mapping[str, Any]] | None = None
                     ) -> list[tuple[str, float, float, float]]:
    """Narayanan §5.1 end-to-end estimates, time ≈ 8·T·P/(n·X).

    GPT-3 175B on 300B tokens with 1024 A100 at 140 TFLOP/s ≈ 34 days; 1T on 450B tokens with 3072
    A100 at 163 TFLOP/s ≈ 84 days. Each entry: (name, the paper's 8TP/(nX), our hardware FLOPs at the
    paper's throughput, our plan's wall time with goodput overheads off).
    """
    plans = _others(via)[:2] if plans is None else plans
    out = []
    for name, plan, n, x, tokens, params in (("GPT-3 175B", plans[0], 1024, 140e12, 300e9, 175e9),
                                              ("1T", plans[1], 3072, 163e12, 450e9, 1e12)):
        paper = 8.0 * tokens * params / (n * x) / 86400.0
        ours_at_x = float(plan["training"]["flops_total_hw"] / (n * x) / 86400.0)
        out.append((name, paper, ours_at_x, float(plan["training"]["wall_days"])))
    return out


def llama65b_tokens_per_gpu_s(via: str = "api", plan: Mapping[str, Any] | None = None) -> float:
    """Out of sample: LLaMA-65B reached 380 tokens/s/GPU on 2048 A100-80GB (Touvron et al. 2023 §2.4)."""
    plan = (evaluate_cli if via == "cli" else evaluate_api)([llama65b_scenario()])[0] if plan is None else plan
    return float(plan["training"]["tokens_per_s"] / 2048.0)


# ---------------------------------------------------------------- report

def _summary(err: np.ndarray) -> str:
    return f"median |error| {np.median(np.abs(err)):.1f}%   worst |error| {np.max(np.abs(err)):.1f}%"


def main() -> None:
    t, out, err = predict(via="cli")
    step = out["step_time_s"]
    print("Megatron-LM Table 1 through `python -m simulator evaluate FILE.json` (one scenario file per row, "
          f"accelerator {A100} from the catalog)")
    print("row  id                   measured  predicted  error%   gemm_eff  compute%  tp%  bubble%  p2p%  dp%")
    ids = [r["id"] for r in table1_rows()]
    for i in range(len(err)):
        print(f"{i + 1:>3}  {ids[i]:<19}  {t['tflops_per_gpu'][i]:>8.0f}  "
              f"{out['hw_tflops_per_gpu'][i]:>9.1f}  {err[i]:>+6.1f}   {out['gemm_efficiency'][i]:>8.3f}  "
              f"{100 * out['compute_s'][i] / step[i]:>8.1f}  {100 * out['tp_comm_s'][i] / step[i]:>3.0f}  "
              f"{100 * out['pp_bubble_s'][i] / step[i]:>7.1f}  {100 * out['pp_p2p_s'][i] / step[i]:>4.1f}  "
              f"{100 * out['dp_exposed_s'][i] / step[i]:>3.1f}")
    print(f"default constants (none fitted), through the CLI: {_summary(err)}   (targets: 8% and 15%)")
    _, api_out, _ = predict(via="api")
    same = np.array_equal(api_out["hw_tflops_per_gpu"], out["hw_tflops_per_gpu"])
    print(f"Scenario.from_dict + evaluate (the Python API) gives {'the same' if same else 'DIFFERENT'} numbers")

    diffs = catalog_vs_examples()
    if diffs:
        shown = "; ".join(f"{name} {a:g} in the catalog vs {b:g} in examples.A100_80GB" for name, a, b in diffs)
        dev = examples_a100_device()
        _, ex_out, ex_err = predict(devices={dev.id: dev}, accelerator=dev.id)
        print(f"catalog vs training/examples.py A100_80GB: {shown}")
        print(f"  with the examples' figures (a user device, Python API): {_summary(ex_err)}; hw TFLOP/s "
              f"{np.array2string(ex_out['hw_tflops_per_gpu'], precision=1)}; the catalog moves each row by "
              f"{np.array2string(out['hw_tflops_per_gpu'] - ex_out['hw_tflops_per_gpu'], precision=2, sign='+')}")
    else:
        print("catalog vs training/examples.py A100_80GB: the same figures")

    fitted, loo = leave_one_out(t)
    print(f"calibration check: gemm_eff_max fitted on all rows = {fitted:.3f}; leave-one-out errors "
          f"{np.array2string(loo, precision=1, sign='+')}; {_summary(loo)}")
    gpt3, one_t, llama = _others("cli")
    for name, paper, ours_at_x, ours in section_5_1_days(plans=(gpt3, one_t)):
        print(f"§5.1 {name}: paper 8TP/(nX) {paper:.1f} days; our FLOPs at the paper's throughput "
              f"{ours_at_x:.1f} days; our plan (CLI, goodput off) {ours:.1f} days")
    print(f"out of sample, LLaMA-65B on 2048 A100 (layout assumed, CLI): "
          f"{llama65b_tokens_per_gpu_s(plan=llama):.0f} tokens/s/GPU predicted vs 380 published")


if __name__ == "__main__":
    main()
