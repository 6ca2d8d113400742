"""The fitting half of calibration: measurement rows in, the `fits` section of a profile out.

Every fit is a physically shaped model (they extrapolate), fitted on the smaller points and checked on
the largest ones held out; see docs/profile-schema.md for the record each fit produces.
"""

from __future__ import annotations

from typing import Any

from calibration.fit.collectives import fit_collectives
from calibration.fit.compute import fit_compute
from calibration.fit.inference import fit_quantization, fit_roofline
from calibration.fit.moe import fit_moe_layer
from calibration.fit.network import fit_ddp, fit_parameter_server
from calibration.fit.pruning import fit_pruning
from calibration.fit.serving import fit_decode, fit_prefill

__all__ = ["fit_all"]


def fit_all(rows: list[dict[str, Any]], env: dict[str, Any] | None = None) -> dict[str, Any]:
    """All fits, keyed as in the profile's `fits` section. Indices in points' `rows` refer to `rows`."""
    env = env or {}
    roofline = fit_roofline(rows, env)
    compute = fit_compute(rows, env)
    moe = fit_moe_layer(rows, compute)
    if moe:  # fits.compute.moe_layer: only where the run measured the layer (older runs did not)
        compute["moe_layer"] = moe
    return {
        "compute": compute,
        "collectives": fit_collectives(rows, env),
        "parameter_server": fit_parameter_server(rows),
        "ddp": fit_ddp(rows),
        "inference": {
            "roofline": roofline,
            "quantization": fit_quantization(rows, roofline),
            "prefill": fit_prefill(rows, compute),
            "decode": fit_decode(rows),
            "pruning": fit_pruning(rows, env),
        },
    }
