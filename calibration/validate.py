"""`python -m calibration validate PROFILE [--nproc N] [--out FILE]`: re-measure the held-out points of
every fit in a profile and compare them with what the profile predicts.

The held-out points are the largest of each fit, never seen by it, so this is an extrapolation test on
fresh timings (re-measured as a run measures them: the same threads, local points interleaved, collectives
under torchrun). Prints a table (fit, point, predicted, measured, error %, the profile's own measurement
of the point and the re-measurement's difference from it) and, per fit and pooled, the MAPE, the repeatability
(the noise floor: re-measured vs the profile's measurement) and the predictions' MAPE against the profile's
measurements; writes it as CSV (--out *.csv) or markdown (any other name). The headline pools the fits the
simulator's plans use (calibration/validate_scope.py finds them from the simulator's own reading of the profile);
fits of a dtype the probe marked emulated, and fits that feed no simulator figure (a lone rank's collectives among
them), are re-measured and shown in their own sections, with the reason, out of the headline. Conditional
models (DDP: step time given its compute and all-reduce times) are scored on the conditions re-measured with
the point. Exit status 0, or 2 with a message when the
profile is unusable or the re-measuring half is unavailable.

The profile may come from anyone, so it does not decide how much this machine does: without --nproc a point is
re-measured on at most as many ranks as this machine has CPUs (cpu points) or visible GPUs (cuda points); a point
that asks for more is reported as skipped, and validate says so. --nproc N lifts the cap to N ranks.

The points are chosen and scored in calibration/validate_points.py, sorted into the headline and the sections
apart in calibration/validate_scope.py, summed up and rendered in calibration/validate_summary.py; this module
is the command and the rank caps of this machine.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from calibration.rows import Step, make_row
from calibration.validate_points import CONTEXTS, Remeasure, compare, heldout_targets
from calibration.validate_scope import classify
from calibration.validate_summary import loadavg_1min, render_csv, render_markdown, summarize
from simulator.profile import ProfileError, load_profile


def _load_remeasure() -> Remeasure:
    from calibration.bench.registry import remeasure  # imports torch; tests replace this loader

    return remeasure


def _available_cpus() -> int:
    """CPUs this process may run on (affinity), as calibration.timing counts them (without importing torch)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _visible_gpus() -> int:
    """GPUs this process sees (torch honours CUDA_VISIBLE_DEVICES); 0 without torch or CUDA."""
    try:
        import torch
    except ImportError:
        return 0
    try:
        return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0
    except Exception:  # a broken driver: no GPU ranks
        return 0


def rank_caps() -> dict[str, int]:
    """The most ranks validate starts per device without --nproc: this machine's CPUs, its visible GPUs."""
    return {"cpu": _available_cpus(), "cuda": _visible_gpus()}


def capped(remeasure: Remeasure, caps: dict[str, int], say: Callable[[str], None] | None = None) -> Remeasure:
    """`remeasure`, except that a row asking for more ranks than its device has here (`caps`; another device
    counts as a CPU) is not launched: it comes back "skipped", with the reason, and `say` is told once."""
    def run(rows: list[dict[str, Any]], nproc: int | None = None) -> list[dict[str, Any]]:
        out: list[dict[str, Any] | None] = [None] * len(rows)
        keep, over = [], []
        for i, row in enumerate(rows):
            device = str(row.get("device"))
            cap = caps.get(device, caps.get("cpu", 1))
            world = row.get("world_size", 1)
            if isinstance(world, int) and world > cap:
                unit = "visible GPUs" if device == "cuda" else "CPUs"
                out[i] = make_row(Step.from_dict(row), run_id="validate-capped", status="skipped",
                                  error=f"world_size {world} > the {cap} {unit} here (pass --nproc to run it)")
                over.append(world)
            else:
                keep.append(i)
        if over and say is not None:
            say(f"validate: {len(over)} points ask for up to {max(over):,} ranks, more than this machine has "
                f"({caps.get('cpu', 0)} CPUs, {caps.get('cuda', 0)} visible GPUs): they are skipped, not launched. "
                "Pass --nproc N to run up to N ranks per device anyway.")
        fresh = remeasure([rows[i] for i in keep], nproc=nproc) if keep else []
        if len(fresh) == len(keep):
            for i, r in zip(keep, fresh, strict=True):
                out[i] = r
            return [r for r in out if r is not None]
        return [r for r in out if r is not None] + list(fresh)  # matched by step key, as compare does

    return run


def main(argv: list[str]) -> int:
    argv = list(argv)[1:] if list(argv)[:1] == ["validate"] else list(argv)
    ap = argparse.ArgumentParser(prog="python -m calibration validate", description=__doc__.split("\n")[0])
    ap.add_argument("profile", type=Path, help="profile.json written by a calibration run")
    ap.add_argument("--nproc", type=int, default=None,
                    help="most ranks for re-measuring distributed points (default: this machine's CPUs for cpu "
                         "points, its visible GPUs for cuda points; a point asking for more is skipped)")
    ap.add_argument("--out", type=Path, default=None, help="write the table: *.csv as CSV, else markdown")
    ap.add_argument("--context", choices=CONTEXTS, default="run",
                    help="run (default): re-measure every point of the run so each held-out point is timed in "
                         "the mix it was measured in; heldout: only the held-out points (faster)")
    args = ap.parse_args(argv)
    if args.nproc is not None and args.nproc < 1:
        print(f"error: --nproc {args.nproc}: must be at least 1", file=sys.stderr)
        return 2
    try:
        profile = load_profile(args.profile)
    except ProfileError as exc:
        print(f"error: {args.profile} is not a usable profile: {exc}", file=sys.stderr)
        return 2
    try:
        remeasure = _load_remeasure()
    except ImportError as exc:
        print(f"error: cannot re-measure (calibration.bench.registry.remeasure unavailable: {exc})",
              file=sys.stderr)
        return 2
    if args.nproc is None:  # the profile asks; this machine decides how many ranks it starts
        remeasure = capped(remeasure, rank_caps(), lambda text: print(text, file=sys.stderr))
    sections, scope = classify(profile, heldout_targets(profile))
    load_before = loadavg_1min()
    results = compare(profile, remeasure, args.nproc, args.context, sections)
    summary = summarize(results, load_before, args.context, scope)
    text = render_markdown(results, summary)
    print(text, end="")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(render_csv(results) if args.out.suffix.lower() == ".csv" else text)
        print(f"wrote {args.out}")
    return 0
