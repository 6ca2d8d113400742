"""Calibrated devices: a calibration profile becomes an accelerator the simulator can plan on.

Fitted numbers take precedence over datasheet ones wherever the profile has them; `HardwareSpec.sources`
says, per group, which one each figure came from.
"""

from __future__ import annotations

import dataclasses
import re
from functools import lru_cache
from pathlib import Path
from typing import Any

from simulator.catalog import HardwareSpec, load_catalog
from simulator.profile import collective_fit, load_profile
from simulator.training.constants import DEFAULT_CONSTANTS

PROFILE_DIR = Path(__file__).parent / "data" / "profiles"
PROFILE_PREFIX = "profile:"
CPU_DTYPES = {"fp32": "fp32", "tf32": "fp32", "bf16": "bf16"}  # precision -> the dtype a CPU fit measured
ASSUMED_CPU = {"hbm_GB": 16.0, "tdp_W": 100.0, "gpu_hour_usd": 0.10}


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:60]


def device_id(profile: dict[str, Any]) -> str:
    """A stable id per profile: its name plus its creation time, so two runs of a day never collide."""
    created = re.sub(r"[^0-9]", "", str(profile.get("created_utc", "")))[:14]
    return PROFILE_PREFIX + _slug(f"{profile.get('name', 'calibrated device')} {created}")


def _datasheet_match(gpu_name: str) -> HardwareSpec | None:
    """The catalog entry whose display name matches a CUDA device name such as 'NVIDIA H200'."""
    wanted = _slug(gpu_name).replace("nvidia-", "").replace("amd-", "")
    for spec in load_catalog().values():
        if _slug(spec.id) == wanted or wanted in _slug(spec.display_name):
            return spec
    return None


def _compute_overlay(profile: dict[str, Any], device: str) -> dict[str, float]:
    """Achieved large-GEMM TFLOP/s per precision, from fits.compute.gemm["<device>/<dtype>"]."""
    out: dict[str, float] = {}
    for key, fit in profile.get("fits", {}).get("compute", {}).get("gemm", {}).items():
        dev, _, dtype = key.partition("/")
        if dev == device and isinstance(fit, dict) and fit.get("status") == "ok":
            out[dtype] = float(fit["params"]["achieved_tflops"])
    return out


def _largest_allreduce(profile: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    worlds = profile.get("fits", {}).get("collectives", {}).get("all_reduce", {}).get("by_world", {})
    for world in sorted((int(w) for w in worlds), reverse=True):
        fit = collective_fit(profile, "all_reduce", world)
        if world > 1 and fit and "busbw_GBps" in fit["params"]:
            return world, fit
    return None


def device_from_profile(profile: dict[str, Any]) -> HardwareSpec:
    """An accelerator built from a (strictly loaded) profile: GPU datasheet overlaid with fitted numbers,
    or, for a CPU-only profile, the machine's own fitted throughput."""
    env = profile.get("environment", {})
    gpus = env.get("gpu_names") or []
    base = _datasheet_match(gpus[0]) if gpus else None
    device = "cuda" if gpus else "cpu"
    achieved = _compute_overlay(profile, device)
    name = profile.get("name", "calibrated device")
    date = profile.get("created_utc", "")[:10] or "unknown"
    label = name if "calibrated" in name else f"{name}, calibrated {date}"
    sources: dict[str, str] = dict(base.sources) if base else {}
    fields: dict[str, Any] = {}
    if base is not None:
        fields = {f.name: getattr(base, f.name) for f in dataclasses.fields(base)}
        # keep the datasheet peak; the fitted large-GEMM efficiency replaces the assumed one
        effs = [achieved[d] / base.peak_tflops[d] for d in achieved if d in base.peak_tflops and d != "fp32"]
        if effs:
            fields["gemm_eff_max"] = min(1.0, max(effs))
            sources["peak_tflops"] = (
                f"datasheet peak ({base.sources['peak_tflops']}); large-GEMM efficiency {fields['gemm_eff_max']:.2f} "
                f"fitted from the GEMM sweep of {name}"
            )
    else:
        peaks = {p: achieved[d] for p, d in CPU_DTYPES.items() if d in achieved}
        if not peaks:
            raise ValueError(f"profile {name!r}: no fitted GEMM throughput (fits.compute.gemm) to plan with")
        fields = {
            "peak_tflops": peaks, "hbm_GB": ASSUMED_CPU["hbm_GB"], "hbm_GBps": 50.0, "intra_node_GBps": 2.0,
            "intra_node_latency_s": 3e-4, "inter_node_GBps": 1.0, "inter_node_latency_s": 1e-3,
            "gpus_per_node": int(max(1, env.get("physical_cores") or 1)),
            "tdp_W": ASSUMED_CPU["tdp_W"], "gpu_hour_usd": ASSUMED_CPU["gpu_hour_usd"], "vendor": env.get("cpu_model", "CPU"),
            "gemm_eff_max": 1.0, "price_date": date,
        }
        sources = {
            "peak_tflops": f"fitted: achieved large-GEMM TFLOP/s from the GEMM sweep of {name}, used as the peak",
            "hbm": "assumed: memory size and bandwidth are not measured by calibration",
            "intra_node": "assumed until an all-reduce fit exists",
            "inter_node": "assumed: a single-node calibration does not measure the network between nodes",
            "tdp": "assumed: 100 W per worker", "price": "assumed: $0.10 per worker-hour",
        }
    ar = _largest_allreduce(profile)
    if ar is not None:
        world, fit = ar
        # the model multiplies link bandwidth by its efficiency; a measured busbw already includes it
        fields["intra_node_GBps"] = fit["params"]["busbw_GBps"] / DEFAULT_CONSTANTS.intra_link_eff
        fields["intra_node_latency_s"] = fit["params"]["alpha_s"]
        sources["intra_node"] = f"fitted: all-reduce busbw {fit['params']['busbw_GBps']:.3g} GB/s and latency at world size {world}, {name}"
    fields.update(
        id=device_id(profile), display_name=label, sources=sources, provenance="fitted",
    )
    fields.setdefault("price_date", date)
    allowed = {f.name for f in dataclasses.fields(HardwareSpec)}
    return HardwareSpec(**{k: v for k, v in fields.items() if k in allowed})


@lru_cache(maxsize=1)
def shipped_profiles() -> dict[str, dict[str, Any]]:
    """Reference profiles shipped with the package, by file stem."""
    return {path.stem: load_profile(path) for path in sorted(PROFILE_DIR.glob("*.json"))}


def shipped_devices() -> dict[str, HardwareSpec]:
    out: dict[str, HardwareSpec] = {}
    for profile in shipped_profiles().values():
        spec = device_from_profile(profile)
        out[spec.id] = spec
    return out
