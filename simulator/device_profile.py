"""A calibration profile becomes an accelerator the simulator can plan on, claiming only what the profile measured.

`HardwareSpec.provenance_of` says, per group, whether the numbers are the datasheet's, fitted, or assumed, and
`HardwareSpec.sources` says where each came from. `HardwareSpec.spreads` gives the relative one-sigma uncertainty
of the model columns the device sets.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from simulator.catalog import SOURCE_GROUPS, HardwareSpec, device_spreads, load_catalog
from simulator.correlations import Origin, fit_correlations
from simulator.data_order import parse_data_order
from simulator.device_curve import curve_source, fit_gemm_curve
from simulator.device_fits import (
    GUESSED_SPREAD,
    a2a_efficiency,
    finite_positive,
    fit_spread,
    gemm_fits,
    largest_allreduce,
    moe_fit,
)
from simulator.device_serving import serving_overlay
from simulator.training.constants import DEFAULT_CONSTANTS

PROFILE_PREFIX = "profile:"
CPU_DTYPES = {"fp32": "fp32", "tf32": "fp32", "bf16": "bf16"}  # precision -> the dtype a CPU fit measured
ASSUMED_CPU = {"hbm_GB": 16.0, "tdp_W": 100.0, "gpu_hour_usd": 0.10}
# the dtype whose GEMM fit sets a device's efficiency curve: the first the profile has, training precisions first
# (a GPU's fp32 runs without tensor cores, so its curve says nothing about the datasheet's tensor peak)
GPU_CURVE_DTYPES = ("bf16", "fp16", "fp8", "tf32")
CPU_CURVE_DTYPES = ("bf16", "fp32")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


def device_id(profile: dict[str, Any]) -> str:
    """A stable id per profile: its name plus its creation time, so two runs of a day never collide."""
    created = re.sub(r"[^0-9]", "", str(profile.get("created_utc", "")))[:14]
    return PROFILE_PREFIX + _slug(f"{profile.get('name', 'calibrated device')} {created}")


def run_nodes(profile: dict[str, Any]) -> int:
    """The nodes the profile's run spanned (its `run.nnodes`, written from run.json since issue 22); 1 where it
    does not say (profiles before it, one-node runs)."""
    run = profile.get("run")
    nodes = run.get("nnodes") if isinstance(run, dict) else None
    return int(nodes) if isinstance(nodes, int) and not isinstance(nodes, bool) and nodes > 1 else 1


def _datasheet_match(gpu_name: str) -> HardwareSpec | None:
    """The catalog entry whose display name matches a CUDA device name such as 'NVIDIA H200'."""
    wanted = _slug(gpu_name).replace("nvidia-", "").replace("amd-", "")
    if not wanted:  # "" is in every name: a name of no letters or digits matches nothing
        return None
    for spec in load_catalog().values():
        if _slug(spec.id) == wanted or wanted in _slug(spec.display_name):
            return spec
    return None


def _moe_overlay(profile: dict[str, Any], device: str, curve_dtype: str | None, name: str, fields: dict[str, Any],
                 sources: dict[str, str], provenance_of: dict[str, str], spreads: dict[str, float],
                 origins: dict[str, Origin]) -> None:
    """The mixture-of-experts columns: a2a_eff from the all-to-all and all-reduce fits, moe_gemm_eff from the MoE
    layer fit (the efficiency curve's dtype first); where the profile has neither, the model's assumed 1.0, said so
    (groups "all_to_all" and "moe_gemm" of provenance_of and sources)."""
    a2a = a2a_efficiency(profile)
    if a2a is not None:
        world, eff, spread, a2a_fit, ar_fit = a2a
        fields["a2a_eff"] = float(eff)
        sources["all_to_all"] = (f"fitted: all-to-all busbw {a2a_fit['params']['busbw_GBps']:.3g} GB/s over the "
                                 f"all-reduce's {ar_fit['params']['busbw_GBps']:.3g} GB/s at world size {world}, {name}")
        provenance_of["all_to_all"] = "fitted"
        spreads["a2a_eff"] = spread or GUESSED_SPREAD
        origins["a2a_eff"] = Origin(f"fits.collectives.all_to_all.by_world.{world}", a2a_fit, "busbw_GBps")
    else:
        sources["all_to_all"] = (f"assumed: a2a_eff {DEFAULT_CONSTANTS.a2a_eff:g} (all-to-all at the all-reduce's "
                                 "share of the link); the profile has no all_to_all fit at a world size above 1 with "
                                 "an all-reduce fit")
        provenance_of["all_to_all"] = "assumed"
    moe = moe_fit(profile, device, tuple(d for d in (curve_dtype, *(CPU_CURVE_DTYPES if device == "cpu"
                                                                   else GPU_CURVE_DTYPES)) if d))
    if moe is not None:
        dtype, fit = moe
        fields["moe_gemm_eff"] = float(fit["params"]["moe_gemm_eff"])
        sources["moe_gemm"] = (f"fitted: moe_gemm_eff {fit['params']['moe_gemm_eff']:.3g}, the {device}/{dtype} MoE "
                               f"layer's dense-fit prediction over its measured time, {name}")
        provenance_of["moe_gemm"] = "fitted"
        spreads["moe_gemm_eff"] = fit_spread(fit, "moe_gemm_eff") or GUESSED_SPREAD
        origins["moe_gemm_eff"] = Origin(f"fits.compute.moe_layer.{device}/{dtype}", fit, "moe_gemm_eff")
    else:
        sources["moe_gemm"] = (f"assumed: moe_gemm_eff {DEFAULT_CONSTANTS.moe_gemm_eff:g} (expert GEMMs at the dense "
                               "GEMM efficiency of their shape); the profile has no MoE layer fit")
        provenance_of["moe_gemm"] = "assumed"


def _data_order_overlay(profile: dict[str, Any], name: str, fields: dict[str, Any], sources: dict[str, str],
                        provenance_of: dict[str, str], spreads: dict[str, float]) -> None:
    """The data-order effect the profile's quality calibration measured (group "data_order"), or the model's
    assumed constant, said so."""
    quality = profile.get("quality") if isinstance(profile.get("quality"), dict) else {}
    measured = parse_data_order(quality.get("data_order"))
    if measured is not None:
        fields["data_order"] = measured.columns()
        sources["data_order"] = f"{measured.sentence()}, {name}"
        provenance_of["data_order"] = "measured"
        spreads.update(measured.spreads())
    else:
        sources["data_order"] = (f"assumed: sequential shards cost asynchronous SGD {DEFAULT_CONSTANTS.noniid_async_penalty:g}"
                                 "·(1 - 1/P) more updates, synchronous none; the profile has no data-order "
                                 "measurement (python -m calibration run --full measures it)")
        provenance_of["data_order"] = "assumed"


def device_from_profile(profile: dict[str, Any]) -> HardwareSpec:
    """An accelerator built from a (strictly loaded) profile: the GPU's datasheet with only what the profile
    measured overlaid (the GEMM efficiency curve, the intra-node link where an all-reduce fit exists), or, for a
    CPU-only profile, the machine's own fitted throughput with everything else marked assumed."""
    env = profile.get("environment", {})
    gpus = env.get("gpu_names") or []
    base = _datasheet_match(gpus[0]) if gpus else None
    device = "cuda" if gpus else "cpu"
    fits_by_dtype = gemm_fits(profile, device)
    achieved = {dtype: float(fit["params"]["achieved_tflops"]) for dtype, fit in fits_by_dtype.items()}
    name = profile.get("name", "calibrated device")
    date = profile.get("created_utc", "")[:10] or "unknown"
    label = name if "calibrated" in name else f"{name}, calibrated {date}"
    origins: dict[str, Origin] = {}  # uncertain column -> the fit it came from (their correlations)
    if base is not None:
        fields: dict[str, Any] = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
        sources = dict(base.sources)
        provenance_of = dict(base.provenance_of)
        spreads = dict(device_spreads(base))
        # keep the datasheet peak; the fitted efficiency curve replaces the assumed one
        dtype = next((d for d in GPU_CURVE_DTYPES if d in achieved and d in base.peak_tflops), None)
        if dtype is not None:
            curve = fit_gemm_curve(profile, f"{device}/{dtype}", base.peak_tflops[dtype], base.hbm_GBps)
            fields.update(gemm_eff_max=curve.eff_max, gemm_dim_half=curve.dim_half)
            provenance_of["peak_tflops"] = "fitted"
            sources["peak_tflops"] = f"datasheet peak ({base.sources['peak_tflops']}); {curve_source(curve, name)}"
            spreads["gemm_eff_max"] = fit_spread(fits_by_dtype[dtype], "achieved_tflops") or spreads["gemm_eff_max"]
            origins["gemm_eff_max"] = Origin(f"fits.compute.gemm.{device}/{dtype}", fits_by_dtype[dtype], "achieved_tflops")
    else:
        peaks = {p: achieved[d] for p, d in CPU_DTYPES.items() if d in achieved}
        if not peaks:
            raise ValueError(f"profile {name!r}: no fitted GEMM throughput (fits.compute.gemm) to plan with")
        dtype = next(d for d in CPU_CURVE_DTYPES if d in achieved)
        hbm_GBps = 50.0
        curve = fit_gemm_curve(profile, f"{device}/{dtype}", achieved[dtype], hbm_GBps)
        fields = {
            "peak_tflops": peaks, "hbm_GB": ASSUMED_CPU["hbm_GB"], "hbm_GBps": hbm_GBps, "intra_node_GBps": 2.0,
            "intra_node_latency_s": 3e-4, "inter_node_GBps": 1.0, "inter_node_latency_s": 1e-3,
            "gpus_per_node": int(max(1, env.get("physical_cores") or 1)),
            "tdp_W": ASSUMED_CPU["tdp_W"], "gpu_hour_usd": ASSUMED_CPU["gpu_hour_usd"], "vendor": env.get("cpu_model") or "CPU",
            "gemm_eff_max": curve.eff_max, "gemm_dim_half": curve.dim_half, "price_date": date,
        }
        sources = {
            "peak_tflops": f"fitted: achieved large-GEMM TFLOP/s from the GEMM sweep of {name}, used as the peak; "
                           f"{curve_source(curve, name)}",
            "hbm": "assumed: memory size and bandwidth are not measured by calibration",
            "intra_node": "assumed until an all-reduce fit exists",
            "inter_node": "assumed: a single-node calibration does not measure the network between nodes",
            "tdp": "assumed: 100 W per worker", "price": "assumed: $0.10 per worker-hour",
        }
        provenance_of = {"peak_tflops": "fitted", **dict.fromkeys(SOURCE_GROUPS[1:], "assumed")}
        spreads = {"gemm_eff_max": fit_spread(fits_by_dtype[dtype], "achieved_tflops") or GUESSED_SPREAD,
                   "hbm_eff": GUESSED_SPREAD, "intra_GBps": GUESSED_SPREAD, "inter_GBps": GUESSED_SPREAD}
        origins["gemm_eff_max"] = Origin(f"fits.compute.gemm.{device}/{dtype}", fits_by_dtype[dtype], "achieved_tflops")
    serving, serving_spreads, serving_notes, serving_origins = serving_overlay(profile, device, fields["hbm_GBps"], name)
    fields.update(serving)
    spreads.update(serving_spreads)
    origins.update(serving_origins)
    if serving_notes:
        sources["serving"] = "; ".join(serving_notes)
    ar = largest_allreduce(profile)
    if ar is not None:
        world, fit = ar
        # a run over several nodes (profile.run.nnodes, from its run.json) puts world/nnodes ranks on each node, so
        # every all-reduce it fitted crossed the network, whose link (the ring's slowest) its busbw measures
        nodes = run_nodes(profile)
        link, col, eff = (("inter_node", "inter_GBps", DEFAULT_CONSTANTS.inter_link_eff) if nodes > 1 else
                          ("intra_node", "intra_GBps", DEFAULT_CONSTANTS.intra_link_eff))
        # the model multiplies link bandwidth by its efficiency; a measured busbw already includes it
        fields[f"{link}_GBps"] = fit["params"]["busbw_GBps"] / eff
        fields[f"{link}_latency_s"] = fit["params"]["alpha_s"]
        across = f" across {nodes} nodes" if nodes > 1 else ""
        sources[link] = (f"fitted: all-reduce busbw {fit['params']['busbw_GBps']:.3g} GB/s and latency at world size "
                         f"{world}{across}, {name}")
        provenance_of[link] = "fitted"
        spreads[col] = fit_spread(fit, "busbw_GBps") or spreads[col]
        origins[col] = Origin(f"fits.collectives.all_reduce.by_world.{world}", fit, "busbw_GBps")
    _moe_overlay(profile, device, dtype, name, fields, sources, provenance_of, spreads, origins)
    _data_order_overlay(profile, name, fields, sources, provenance_of, spreads)
    correlations, correlation_notes = fit_correlations(origins)
    if correlation_notes:
        sources["correlations"] = "; ".join(correlation_notes)
    fields.update(
        id=device_id(profile), display_name=label, sources=sources, provenance_of=provenance_of, spreads=spreads,
        correlations=correlations,
        provenance="fitted" if "fitted" in provenance_of.values() else "datasheet",
    )
    fields.setdefault("price_date", date)
    heldout_pct = (profile.get("summary") or {}).get("mape_heldout_pct_median")
    fields["heldout_error"] = float(heldout_pct) / 100.0 if finite_positive(heldout_pct) else None
    allowed = {f.name for f in dataclasses.fields(HardwareSpec)}
    return HardwareSpec(**{k: v for k, v in fields.items() if k in allowed})
