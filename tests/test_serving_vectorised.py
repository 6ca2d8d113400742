"""The batch searches on the step time's batch curve (serving/step.py SteadyCurve) and the monthly flows with their
one-row shortcuts (serving/money.py) give the numbers of the algorithms they replaced, kept here as they were, on
random rows."""

import numpy as np
import pytest

from simulator.serving.capacity import BISECT_STEPS, REL_TOL, best_batch, operating_batch, replicas_for
from simulator.serving.constants import HOURS_PER_MONTH, SECONDS_PER_MONTH
from simulator.serving.money import monthly_flows, npv
from simulator.serving.step import Replica, SteadyCurve, prefill_alone, steady_step

N = 4000


# ---------------------------------------------------------------- the algorithms as they were (before SteadyCurve)

def old_best_batch(r, limit, prompt_tokens, output_tokens, tpot_target_s, ttft_target_s):
    prefill_s = prefill_alone(r, prompt_tokens).total_s

    def ok(b):
        step_s = steady_step(r, b, prompt_tokens, output_tokens).total_s
        return (step_s <= tpot_target_s) & (prefill_s + step_s <= ttft_target_s) & (b >= 1) & (b <= limit)

    limit = np.floor(np.asarray(limit, dtype=float))
    at_limit = ok(limit)
    lo = np.where(ok(np.ones_like(limit)), 1.0, 0.0)
    hi = np.maximum(limit, 1.0)
    for _ in range(BISECT_STEPS):
        if not np.any((lo > 0) & (hi - lo > 1.0)):
            break
        mid = np.floor((lo + hi) / 2.0)
        good = (lo > 0) & ok(mid)
        lo = np.where(good, mid, lo)
        hi = np.where(good | (lo == 0), hi, mid)
    return np.where(at_limit, limit, lo)


def old_operating_batch(r, arrivals_per_s, cap_batch, prompt_tokens, output_tokens):
    lo, hi = np.zeros_like(cap_batch), np.asarray(cap_batch, dtype=float)
    for _ in range(BISECT_STEPS):
        open_ = hi - lo > REL_TOL * np.maximum(hi, 1.0)
        if not np.any(open_):
            break
        mid = (lo + hi) / 2.0
        above = arrivals_per_s * output_tokens * steady_step(r, mid, prompt_tokens, output_tokens).total_s > mid
        lo = np.where(open_ & above, mid, lo)
        hi = np.where(open_ & ~above, mid, hi)
    return hi


def old_monthly_flows(c):
    col = {k: np.asarray(v, dtype=float)[:, None] for k, v in c.items() if np.ndim(v) == 1}
    horizon = col["horizon_months"]
    m = np.arange(int(np.nanmax(horizon)), dtype=float)[None, :]
    within = m < horizon
    growth = (1.0 + col["traffic_growth_per_month"]) ** m
    rate = col["requests_per_s"] * growth
    gpus = replicas_for(rate * col["peak_to_average"], col["serving.replica_requests_per_s"]) * col["gpus_per_replica"]
    rent = gpus * col["serving_gpu_hour_usd"] * (1.0 - col["commit_discount"]) * HOURS_PER_MONTH
    gpus = np.where(within, gpus, 0.0)
    rent = np.where(within, rent, 0.0)
    owned = np.where(within, np.fmax.accumulate(gpus, axis=1), 0.0)
    bought = np.maximum(np.diff(owned, axis=1, prepend=0.0), 0.0)
    capex_per_gpu = col["purchase_usd"] / (1.0 - col["interconnect_share"])
    kw = col["serving_hw_tdp_W"] * col["server_power_factor"] / 1000.0
    opex = owned * kw * (col["power_utilization"] * col["pue"] * HOURS_PER_MONTH * col["electricity_usd_per_kwh"]
                         + col["colocation_usd_per_kw_month"])
    life_months = 12.0 * col["lifetime_years"]
    book = np.sum(bought * capex_per_gpu * np.clip(1.0 - (horizon - m) / life_months, 0.0, 1.0), axis=1,
                  keepdims=True)
    buy = bought * capex_per_gpu + opex - np.where(m == horizon - 1.0, book, 0.0)
    seconds = np.where(within, rate, 0.0) * SECONDS_PER_MONTH
    price = (1.0 - col["api_price_decline_per_year"]) ** (m / 12.0)
    api = seconds * (col["prompt_tokens"] * col["api_input_usd_per_million"]
                     + col["output_tokens"] * col["api_output_usd_per_million"]) / 1e6 * price
    revenue = seconds * col["output_tokens"] * col["revenue_per_million_output_tokens_usd"] / 1e6
    return rent, buy, api, revenue, gpus, opex


def old_npv(upfront, net, rate_per_year):
    m = np.arange(1, net.shape[1] + 1, dtype=float)[None, :]
    return -upfront + np.sum(net / (1.0 + rate_per_year[:, None]) ** (m / 12.0), axis=1)


# ---------------------------------------------------------------- random rows

def random_replica(rng: np.random.Generator, n: int = N) -> tuple[Replica, np.ndarray, np.ndarray]:
    def pick(*values):
        return rng.choice(np.array(values, dtype=float), n)

    heads = pick(8, 16, 32, 64, 96, 128)
    hidden = heads * pick(64, 128)
    layers = pick(2, 16, 32, 80, 126)
    vocab = pick(32000, 128256)
    ffn = hidden * pick(2.67, 3.5, 4.0)
    params = layers * 12.0 * hidden**2 + vocab * hidden
    tp = pick(1, 2, 4, 8)
    w_bits = pick(4, 8, 16)
    r = Replica(
        layers=layers, hidden=hidden, heads=heads, ffn_hidden=ffn, glu=pick(0, 1), vocab=vocab, params=params,
        model_bytes=params * w_bits / 8.0, kv_token_bytes=2.0 * layers * hidden * pick(0.125, 1.0) * pick(1, 2),
        tp=tp, peak_flops=pick(312, 989, 1979, 2250) * 1e12, gemm_eff_max=rng.uniform(0.5, 0.9, n),
        gemm_dim_half=rng.uniform(20, 200, n), hbm_Bps=pick(2039, 3350, 4800, 8000) * 1e9,
        mem_eff=rng.uniform(0.6, 0.9, n), kv_eff=rng.uniform(0.4, 0.9, n), elem_eff=rng.uniform(0.5, 0.9, n),
        intra_Bps=pick(300, 450, 900) * 1e9, intra_latency_s=rng.uniform(2e-6, 2e-5, n),
        overhead_s=rng.uniform(0, 5e-3, n))
    prompt = np.round(np.exp(rng.uniform(np.log(1), np.log(32000), n)))
    output = np.round(np.exp(rng.uniform(np.log(1), np.log(4000), n)))
    return r, prompt, output


@pytest.mark.parametrize("seed", [0, 1])
def test_the_batch_curve_is_the_steady_step(seed):
    """To 1e-9: at a batch far above the output length steady_step subtracts two whole step times and multiplies
    their rounding by batch/output (up to 1e-10 relative here); the curve subtracts only what a prompt adds."""
    rng = np.random.default_rng(seed)
    r, p, o = random_replica(rng)
    curve = SteadyCurve(r, p, o)
    for batch in (np.ones(N), rng.uniform(0, 2, N), np.round(np.exp(rng.uniform(0, np.log(5000), N))),
                  rng.uniform(0, 1e6, N)):
        np.testing.assert_allclose(curve.total_s(batch), steady_step(r, batch, p, o).total_s, rtol=1e-9, atol=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_batch_searches_give_the_old_batches(seed):
    rng = np.random.default_rng(seed)
    r, p, o = random_replica(rng)
    limit = np.floor(np.exp(rng.uniform(0, np.log(20000), N)))
    tpot, ttft = rng.uniform(0.005, 0.3, N), rng.uniform(0.05, 10, N)
    batch = best_batch(r, limit, p, o, tpot, ttft)
    np.testing.assert_array_equal(batch, old_best_batch(r, limit, p, o, tpot, ttft))
    assert (batch > 1).mean() > 0.3 and (batch == 0).any()  # the random rows reach both ends of the search
    cap = np.maximum(batch, 1.0)
    capacity = cap / (steady_step(r, cap, p, o).total_s * o)  # requests/s a replica carries at that batch
    arrivals = capacity * rng.uniform(0.001, 1.0, N)
    np.testing.assert_allclose(operating_batch(r, arrivals, cap, p, o), old_operating_batch(r, arrivals, cap, p, o),
                               rtol=1e-9, atol=0)


def random_money(rng: np.random.Generator, n: int = N, same: bool = False) -> dict[str, np.ndarray]:
    def draw(low, high):
        return np.full(n, rng.uniform(low, high)) if same else rng.uniform(low, high, n)

    return {
        "horizon_months": np.round(draw(1, 60)) if not same else np.full(n, 36.0),
        "traffic_growth_per_month": draw(-0.2, 0.3), "requests_per_s": rng.uniform(0.1, 500, n),
        "peak_to_average": rng.uniform(1, 4, n), "gpus_per_replica": rng.choice([1.0, 2, 4, 8], n),
        "serving.replica_requests_per_s": rng.uniform(0.05, 50, n), "serving_gpu_hour_usd": rng.uniform(1, 8, n),
        "commit_discount": rng.uniform(0, 0.6, n), "purchase_usd": rng.uniform(1e4, 5e4, n),
        "interconnect_share": rng.uniform(0, 0.3, n), "serving_hw_tdp_W": rng.uniform(300, 1200, n),
        "server_power_factor": rng.uniform(1.5, 2, n), "power_utilization": rng.uniform(0.5, 1, n),
        "pue": rng.uniform(1.1, 1.5, n), "electricity_usd_per_kwh": rng.uniform(0.03, 0.2, n),
        "colocation_usd_per_kw_month": rng.uniform(100, 250, n), "lifetime_years": rng.uniform(1, 8, n),
        "api_price_decline_per_year": draw(0, 0.9), "prompt_tokens": rng.uniform(10, 5000, n),
        "api_input_usd_per_million": rng.uniform(0.1, 5, n), "output_tokens": rng.uniform(10, 2000, n),
        "api_output_usd_per_million": rng.uniform(0.1, 15, n),
        "revenue_per_million_output_tokens_usd": rng.uniform(0, 20, n),
        "unrelated": rng.uniform(0, 1, n), "a_scalar": np.float64(3.0),
    }


@pytest.mark.parametrize("seed, same", [(0, False), (1, False), (2, True), (3, True)])
def test_the_monthly_flows_are_the_old_flows(seed, same):
    rng = np.random.default_rng(seed)
    c = random_money(rng, same=same)
    new = monthly_flows(c)
    for name, want in zip(("rent", "buy", "api", "revenue", "gpus", "opex"), old_monthly_flows(c), strict=True):
        np.testing.assert_allclose(getattr(new, name), want, rtol=1e-12, atol=0, err_msg=name)
    upfront, rate = rng.uniform(0, 1e6, N), np.full(N, 0.1) if same else rng.uniform(0, 0.3, N)
    net = new.revenue - new.rent
    np.testing.assert_allclose(npv(upfront, net, rate), old_npv(upfront, net, rate), rtol=1e-9, atol=1e-6)
