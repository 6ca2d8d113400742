"""Sweep throughput end to end through the public API, before and after the input registry, side by side.

Run: python -m benchmarks.sweep_speed [--before PATH] [--after PATH] [--repeats 5] [--profile]

`sweep()` (DataFrame) and `sweep_arrays()` (columns) evaluate a 1,024,000-row grid over the GPU count, global
batch, training tokens, accelerator, tensor parallelism, recomputation and ZeRO stage (grid expansion,
validation, the families the sweep's figures need, tabulation): the training grid, no `columns` asked, so a tree
with simulator/needs.py runs its default (a training plan's families: training, goodput, cost, quality) and an
older one every family. A second grid of 1,024,000 rows asks for the serving and finance figures
(`columns=["serving", "finance"]`; a tree without `columns` computes every figure, serving and finance among
them): request rate, prompt and output lengths, serving accelerator, deployment, rental term, peak ÷ average and
time-per-token target over one 7B training plan; a tree without serving (57d7fd6) shows n/a. Two worker processes run the same measurement: BEFORE imports
`simulator` from the tree of commit 57d7fd6 (the commit before the registry, extracted read-only with
`git archive 57d7fd6 | tar -x -C /tmp/modelfolio-57d7fd6`, done here when the folder is missing) and AFTER from
this checkout, both with this interpreter. Runs alternate before/after so that load from other processes on a
shared machine falls on both alike; each figure is the median of `--repeats` runs, by wall clock and by the
worker's own CPU time. `training_columns` alone on a million random model columns is timed the same way, to
show the training model's part. `--profile` prints cProfile's top functions of one AFTER `sweep_arrays`;
`--after PATH` measures another tree in place of this checkout (e.g. a copy before an optimisation).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BEFORE_COMMIT = "57d7fd6"
BEFORE_DIR = Path(tempfile.gettempdir()) / f"modelfolio-{BEFORE_COMMIT}"
TARGET = 2_000_000  # scenarios per second, training grid
SERVING_TARGET = 1_000_000  # scenarios per second, serving+finance grid

# 40 x 5 x 40 x 4 x 4 x 2 x 4 = 1,024,000 scenarios; every key exists, with the same meaning, in both trees
GRID = {
    "cluster.gpus": [64 * i for i in range(1, 41)],
    "training.global_batch_seqs": [256, 512, 1024, 2048, 4096],
    "training.tokens": np.geomspace(1e11, 1e13, 40).tolist(),
    "cluster.accelerator": ["H100-SXM", "A100-80GB-SXM", "H200", "B200"],
    "cluster.tp": [1, 2, 4, 8],
    "training.recompute": ["none", "full"],
    "training.zero_stage": [0, 1, 2, 3],
}
BASE = {"model": {"params": 7e9}, "cluster": {"gpus": 64}, "training": {"global_batch_seqs": 1024}}
# 40 x 8 x 5 x 4 x 2 x 2 x 4 x 10 = 1,024,000 scenarios of serving one 7B model, its money over 36 months
SERVING_GRID = {
    "serving.requests_per_s": np.geomspace(0.1, 1000, 40).tolist(),
    "serving.prompt_tokens": [128, 256, 512, 1000, 2000, 4000, 8000, 16000],
    "serving.output_tokens": [64, 128, 256, 512, 1024],
    "serving.accelerator": ["H100-SXM", "A100-80GB-SXM", "H200", "B200"],
    "finance.deploy": ["rent", "buy"],
    "finance.rent_term": ["on_demand", "1y"],
    "serving.peak_to_average": [1.5, 2.0, 3.0, 4.0],
    "serving.tpot_target_s": np.linspace(0.02, 0.2, 10).tolist(),
}
SERVING_COLUMNS = ["serving", "finance"]
# the last: the training model alone, for its share; "/serving": the serving grid
FUNCTIONS = ("sweep_arrays", "sweep", "sweep_arrays/serving", "sweep/serving", "training_columns")
MODEL_ROWS = 1_000_000


def random_columns(n: int = MODEL_ROWS, seed: int = 0) -> dict[str, np.ndarray]:
    """Roughly valid random model columns for `training_columns` (also used by tests)."""
    from simulator.training import params_from_shape

    rng = np.random.default_rng(seed)

    def pick(*values):
        return rng.choice(np.array(values, dtype=np.float64), n)

    heads = pick(16, 32, 64, 96, 128)
    hidden = heads * pick(64, 128)
    kv_heads = np.minimum(heads, pick(8, 16, 128))
    glu = pick(0, 1)
    ffn = np.where(glu > 0, 8.0 / 3.0, 4.0) * hidden
    layers, vocab, seq = pick(24, 32, 48, 80, 96, 128), pick(32000, 50257, 128256), pick(2048, 4096, 8192)
    tp, pp, dp = pick(1, 2, 4, 8), pick(1, 2, 4, 8, 16), pick(1, 2, 8, 32, 128, 512)
    micro = pick(1, 2, 4)
    gpus = tp * pp * dp
    return {
        "layers": layers, "hidden": hidden, "heads": heads, "kv_heads": kv_heads, "ffn_hidden": ffn,
        "glu": glu, "vocab": vocab, "seq_len": seq,
        "params": params_from_shape(layers, hidden, heads, kv_heads, ffn, glu, vocab),
        "tokens": rng.uniform(1e10, 1e13, n), "global_batch": dp * micro * pick(1, 4, 16, 64),
        "micro_batch": micro, "recompute": pick(0, 1, 2), "zero_stage": pick(0, 1, 2, 3),
        "sequence_parallel": pick(0, 1), "interleave": pick(1, 2), "param_bytes": pick(1, 2, 4),
        "act_bytes": pick(1, 2), "gpus": gpus, "gpus_per_node": pick(4, 8), "tp": tp, "pp": pp, "dp": dp,
        "sync": pick(0, 1, 2, 3), "ps_servers": pick(1, 4, 16), "async_kappa": rng.uniform(0, 0.05, n),
        "straggler_cv": rng.uniform(0, 0.1, n), "sharding": pick(0, 1), "dp_overlap": rng.uniform(0, 1, n),
        "peak_tflops": pick(312, 989, 1979), "hbm_GB": pick(40, 80, 141), "hbm_GBps": pick(2039, 3350, 4800),
        "intra_GBps": pick(300, 450, 900), "intra_latency_s": pick(8e-6, 10e-6),
        "inter_GBps": pick(25, 50, 100), "inter_latency_s": pick(15e-6, 20e-6),
        "tdp_W": pick(400, 700, 1000), "gpu_hour_usd": rng.uniform(1, 7, n),
        "server_power_factor": pick(1.82), "power_utilization": pick(0.75), "pue": pick(1.1, 1.25),
        "co2_kg_per_kwh": rng.uniform(0.02, 0.8, n),
    }


# ---------------------------------------------------------------- worker (runs inside the tree it measures)

def _function(name: str):
    from simulator import sweeps

    return getattr(sweeps, name)


_RANDOM: list[dict[str, np.ndarray]] = []  # the worker's random columns, made once


def _time_once(name: str) -> dict[str, float]:
    """One timed run: a sweep end to end, or `training_columns` alone on random model columns. A tree that does
    not know the serving grid's keys answers {"skipped": why}."""
    import inspect

    from simulator import Scenario, ScenarioError
    from simulator.training import training_columns

    if name == "training_columns":
        if not _RANDOM:
            _RANDOM.append(random_columns())
        w0, c0 = time.perf_counter(), time.process_time()
        rows = len(training_columns(_RANDOM[0])["step_time_s"])
        return {"rows": rows, "wall": time.perf_counter() - w0, "cpu": time.process_time() - c0}
    function, _, grid_name = name.partition("/")
    fn, base = _function(function), Scenario.from_dict(BASE)
    grid, kwargs = GRID, {}
    if grid_name == "serving":
        grid = SERVING_GRID
        if "columns" in inspect.signature(fn).parameters:
            kwargs = {"columns": SERVING_COLUMNS}
    w0, c0 = time.perf_counter(), time.process_time()
    try:
        rows = len(fn(base, grid, **kwargs)["valid"])
    except ScenarioError as exc:
        return {"skipped": str(exc).splitlines()[0][:80]}
    return {"rows": rows, "wall": time.perf_counter() - w0, "cpu": time.process_time() - c0}


def worker() -> None:
    """Answer one line per request on stdin (a name in FUNCTIONS) with one JSON line of timings."""
    import simulator

    for name in FUNCTIONS:  # warm-up at full size: imports, catalog, hardware table, random columns
        _time_once(name)
    print(json.dumps({"ready": str(Path(simulator.__file__).parent)}), flush=True)
    for line in sys.stdin:
        name = line.strip()
        print(json.dumps(profile() if name == "profile" else _time_once(name)), flush=True)


# ---------------------------------------------------------------- driver

def before_tree(path: Path = BEFORE_DIR) -> Path:
    """The 57d7fd6 tree, extracted with `git archive` (read-only on the repository) if not there yet."""
    if not (path / "simulator" / "__init__.py").exists():
        path.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "-C", str(REPO), "archive", BEFORE_COMMIT], check=True, capture_output=True)
        subprocess.run(["tar", "-x", "-C", str(path)], input=archive.stdout, check=True)
    return path


class _Worker:
    def __init__(self, tree: Path):
        env = dict(os.environ, PYTHONPATH=str(tree))  # PYTHONPATH comes before the editable install
        self.proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker"], cwd=str(tree),
                                     env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        ready = json.loads(self._read())
        if Path(ready["ready"]).resolve() != (tree / "simulator").resolve():
            raise RuntimeError(f"worker for {tree} imported simulator from {ready['ready']}")

    def _read(self) -> str:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"benchmark worker exited with {self.proc.wait()}")
        return line

    def run(self, name: str) -> Any:
        self.proc.stdin.write(name + "\n")
        self.proc.stdin.flush()
        return json.loads(self._read())

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def compare(before: Path, after: Path = REPO, repeats: int = 5,
            profile_after: bool = False) -> tuple[dict[str, dict[str, dict[str, float]]], list[str]]:
    """({function: {"before"|"after": {"rows", "wall_rate", "cpu_rate"}}}, AFTER profile lines or []): medians of
    `repeats` runs, before and after alternating (which goes first alternates too)."""
    workers = {"before": _Worker(before), "after": _Worker(after)}
    try:
        samples: dict[str, dict[str, list[dict[str, float]]]] = {f: {w: [] for w in workers} for f in FUNCTIONS}
        for f in FUNCTIONS:  # one function at a time, so each run follows a run of the same function (steady state)
            for w in workers.values():
                w.run(f)  # untimed: the allocator's state after this function, not after the previous one
            for i in range(repeats):
                order = ("before", "after") if i % 2 == 0 else ("after", "before")
                for w in order:
                    samples[f][w].append(workers[w].run(f))
        profile_lines = workers["after"].run("profile") if profile_after else []
    finally:
        for w in workers.values():
            w.close()
    out: dict[str, dict[str, dict[str, float]]] = {}
    for f, by_tree in samples.items():
        out[f] = {}
        for w, runs in by_tree.items():
            if "skipped" in runs[0]:
                out[f][w] = {"rows": 0, "wall_rate": float("nan"), "cpu_rate": float("nan")}
                continue
            rows = runs[0]["rows"]
            out[f][w] = {"rows": rows, "wall_rate": rows / float(np.median([r["wall"] for r in runs])),
                         "cpu_rate": rows / float(np.median([r["cpu"] for r in runs]))}
    return out, profile_lines


def profile(top: int = 15) -> list[str]:
    """cProfile of one `sweep_arrays` in this process (a worker: the tree it measures), top functions by own time."""
    import cProfile
    import pstats

    _time_once("sweep_arrays")  # untimed: the allocator's steady state for this function (as the timed runs)
    prof = cProfile.Profile()
    prof.enable()
    _time_once("sweep_arrays")
    prof.disable()
    stats = pstats.Stats(prof)
    total = sum(v[2] for v in stats.stats.values())
    lines = [f"cProfile of one AFTER sweep_arrays ({total:.2f} s under the profiler), top {top} by own time:"]
    for (file, line, func), (_cc, calls, own, cum, _callers) in sorted(stats.stats.items(), key=lambda kv: -kv[1][2])[:top]:
        where = f"{Path(file).parent.name}/{Path(file).name}:{line}" if line else file
        lines.append(f"  {100 * own / total:5.1f}% own {100 * cum / total:5.1f}% cum {calls:>7,} calls  {func}  ({where})")
    return lines


def machine() -> str:
    """nproc and the CPU model, for the record."""
    info = Path("/proc/cpuinfo")
    names = [ln.split(":", 1)[1].strip() for ln in info.read_text().splitlines()
             if ln.startswith("model name")] if info.exists() else []
    return f"{os.cpu_count()} CPUs, {names[0] if names else 'unknown CPU'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, default=None, help=f"tree of {BEFORE_COMMIT} (default: extract it)")
    parser.add_argument("--after", type=Path, default=REPO, help="tree to compare with it (default: this checkout)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="also profile one AFTER sweep_arrays")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker()
        return
    before = before_tree() if args.before is None else args.before
    print(f"machine: {machine()}; BEFORE = {before}, AFTER = {args.after}")
    results, profile_lines = compare(before, args.after, args.repeats, args.profile)
    print(f"median of {args.repeats} alternating runs; targets after, end to end: training grid >= {TARGET:,} "
          f"scenarios/s, serving+finance grid >= {SERVING_TARGET:,} scenarios/s")
    print(f"{'what is timed':<40} {'rows':>9} {'clock':<5} {'before /s':>12} {'after /s':>12} {'after/before':>12}")
    labels = {"sweep_arrays": "sweep_arrays, training grid", "sweep": "sweep (DataFrame), training grid",
              "sweep_arrays/serving": "sweep_arrays, serving+finance grid",
              "sweep/serving": "sweep (DataFrame), serving+finance grid",
              "training_columns": "training_columns alone (random columns)"}
    for f, r in results.items():
        for clock in ("wall", "cpu"):
            b, a = r["before"][f"{clock}_rate"], r["after"][f"{clock}_rate"]
            rows = max(r["after"]["rows"], r["before"]["rows"])
            shown = [f"{v:>12,.0f}" if v == v else f"{'n/a':>12}" for v in (b, a)]
            ratio = f"{a / b:>11.2f}x" if a == a and b == b else f"{'n/a':>12}"
            print(f"{labels[f]:<40} {rows:>9,} {clock:<5} {shown[0]} {shown[1]} {ratio}")
    for line in profile_lines:
        print(line)


if __name__ == "__main__":
    if "--worker" not in sys.argv:
        sys.path.insert(0, str(REPO))
    main()
