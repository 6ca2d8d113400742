"""Throughput of training_columns on a million random, roughly valid scenarios.

Run: python -m benchmarks.sweep_speed   (prints scenarios/s, median of 5 runs)
"""

import time

import numpy as np

from simulator.training import params_from_shape, training_columns

ROWS = 1_000_000


def random_columns(n: int = ROWS, seed: int = 0) -> dict[str, np.ndarray]:
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


def measure(n: int = ROWS, repeats: int = 5) -> tuple[float, float]:
    """(scenarios/s by wall clock, scenarios/s by this process's CPU time), medians of `repeats` runs.

    The CPU-time rate is what the code costs; the wall-clock rate also counts time lost to other
    processes on a shared machine.
    """
    cols = random_columns(n)
    training_columns({key: v[:1000] for key, v in cols.items()})  # warm-up
    wall, cpu = [], []
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        training_columns(cols)
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return n / float(np.median(wall)), n / float(np.median(cpu))


SWEEP_GRID = {  # 50 x 40 x 4 x 4 x 4 x 2 x 2 x 2 = 1,024,000 scenarios, validated, evaluated and tabulated
    "cluster.gpus": [64 * i for i in range(1, 51)],
    "training.tokens": np.geomspace(1e11, 1e13, 40).tolist(),
    "training.zero_stage": [0, 1, 2, 3],
    "cluster.sync": ["ring", "tree", "ps", "async"],
    "cluster.tp": [1, 2, 4, 8],
    "training.recompute": ["none", "full"],
    "training.micro_batch_seqs": [1, 2],
    "cluster.accelerator": ["H100-SXM", "A100-80GB-SXM"],
}


def measure_sweep(fn, repeats: int = 5) -> tuple[int, float, float]:
    """End to end sweep (grid expansion, validation, model, quality[, DataFrame]): (rows, wall/s, cpu/s)."""
    from simulator import Scenario

    base = Scenario.from_dict({"model": {"params": 7e9}, "cluster": {"gpus": 64}, "training": {"global_batch_seqs": 1024}})
    fn(base, {"cluster.gpus": [64, 128]})  # warm-up
    wall, cpu, rows = [], [], 0
    for _ in range(repeats):
        w0, c0 = time.perf_counter(), time.process_time()
        rows = len(fn(base, SWEEP_GRID)["valid"])
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return rows, rows / float(np.median(wall)), rows / float(np.median(cpu))


def main() -> None:
    wall_rate, cpu_rate = measure()
    print(f"training_columns on {ROWS:,} random scenarios, median of 5 runs (target >= 1e6/s):")
    print(f"  {wall_rate:,.0f} scenarios/s wall clock; {cpu_rate:,.0f} scenarios/s of CPU time")
    from simulator import sweep
    from simulator.sweeps import sweep_arrays

    for name, fn in (("simulator.sweeps.sweep_arrays (columns)", sweep_arrays), ("simulator.sweep (DataFrame)", sweep)):
        rows, wall_rate, cpu_rate = measure_sweep(fn)
        print(f"{name}, end to end on a {rows:,}-row grid, median of 5 runs:")
        print(f"  {wall_rate:,.0f} scenarios/s wall clock; {cpu_rate:,.0f} scenarios/s of CPU time")


if __name__ == "__main__":
    main()
