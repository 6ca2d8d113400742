"""Command line: `python -m calibration run ...`, `python -m calibration quality ...`,
`python -m calibration validate PROFILE ...` and `python -m calibration serve-check [--profile P] [--quick]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from calibration.rows import BENCHES


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m calibration",
                                description="Measure this machine and write a calibration profile.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the microbenchmarks (rows.jsonl) and write profile.json")
    mode = r.add_mutually_exclusive_group(required=True)
    mode.add_argument("--quick", action="store_const", const="quick", dest="mode", help="about 3 minutes on 2 cores")
    mode.add_argument("--full", action="store_const", const="full", dest="mode", help="about 15 minutes on 2 cores")
    r.add_argument("--out", type=Path, default=None,
                   help="run directory (default runs/calib-<date>); one run at a time holds its run.lock")
    r.add_argument("--nproc", type=int, default=None,
                   help="largest number of ranks per node for the distributed benches (default: CPUs available, "
                        "or GPUs on cuda); more ranks than CPUs run but are labelled oversubscribed")
    r.add_argument("--resume", action="store_true", help="continue the run in --out, skipping measured steps")
    r.add_argument("--only", type=str, default=None, help=f"comma-separated benches, of: {','.join(BENCHES)}")
    r.add_argument("--skip", type=str, default=None,
                   help="comma-separated benches to leave out (the rest, and the quality calibration, still run); "
                        "a plan over its budget says which to leave out to fit")
    r.add_argument("--plan-only", action="store_true",
                   help="probe this machine and print the plan (points per bench, predicted time against the budget) "
                        "without measuring anything; with --progress jsonl also a `PLAN {json}` line on stdout")
    r.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto",
                   help="auto: CPU always, CUDA too when available")
    r.add_argument("--budget-s", type=float, default=None,
                   help="size the grids so the predicted run time fits this many seconds (default 180 with "
                        "--quick, 900 with --full); a short probe of this machine predicts each point's time")
    r.add_argument("--force", action="store_true",
                   help="run even when the plan is predicted over its budget with every fit at its fewest points "
                        "(refused without it: the message names the budget that fits and the benches to leave out)")
    r.add_argument("--progress", choices=("auto", "bar", "jsonl"), default="auto",
                   help="jsonl: also a machine-readable `PROGRESS {json}` line on stdout per step and per sampling "
                        "round; bar: only the human bar (stderr); auto (default): jsonl unless stdout is a terminal")
    r.add_argument("--no-profile", action="store_true", help="measure only; do not call the profile writer")
    multi = r.add_argument_group("several nodes (torchrun c10d rendezvous; run the same command on every node)")
    multi.add_argument("--nnodes", type=int, default=1)
    multi.add_argument("--node-rank", type=int, default=0)
    multi.add_argument("--rdzv-endpoint", type=str, default=None, help="HOST:PORT of node 0 (ports PORT.. are used)")
    multi.add_argument("--rdzv-id", type=str, default=None, help="the same job id on every node")
    multi.add_argument("--ifname", type=str, default=None,
                       help="network interface the collectives use (gloo/NCCL: GLOO_SOCKET_IFNAME, NCCL_SOCKET_IFNAME); "
                            "default: the interface that routes to the --rdzv-endpoint host, unless those variables "
                            "are set")
    q = sub.add_parser("quality", help="train small models, compress them (quantization, pruning), measure with "
                                       "k-fold CV and fit degradation curves (the profile's quality section)")
    qmode = q.add_mutually_exclusive_group(required=True)
    qmode.add_argument("--quick", action="store_const", const="quick", dest="mode", help="about 45 s on 2 cores")
    qmode.add_argument("--full", action="store_const", const="full", dest="mode",
                       help="more folds and points, and the small LM's scaling law (about 4 minutes)")
    q.add_argument("-o", "--out", type=Path, required=True, help="folder for quality_points.jsonl and quality.json")
    q.add_argument("--budget-s", type=float, default=None, help="seconds to size the plan to (default 45 / 225)")
    q.add_argument("--resume", action="store_true", help="keep the points already in --out; measure the rest")
    q.add_argument("--into", type=Path, default=None,
                   help="also put the section into this existing profile.json (re-checked by the loader, atomic)")
    v = sub.add_parser("validate", help="re-measure held-out points and compare them with a profile (ranks capped "
                                        "at this machine's CPUs or visible GPUs unless --nproc is given)")
    v.add_argument("args", nargs=argparse.REMAINDER, help="PROFILE [options of calibration.validate]")
    s = sub.add_parser("serve-check", help="serve a small decoder under a request stream (continuous batching) and "
                                           "compare with the profile's serving prediction")
    s.add_argument("args", nargs=argparse.REMAINDER, help="[--profile P] [--quick]")
    return p


def _benches(option: str, text: str | None) -> frozenset[str] | None:
    """A comma-separated list of bench names; ValueError naming the unknown ones and the choices."""
    if not text:
        return None
    names = frozenset(b.strip() for b in text.split(",") if b.strip())
    unknown = sorted(names - set(BENCHES))
    if unknown:
        raise ValueError(f"{option} {','.join(unknown)}: unknown bench; choose from {', '.join(BENCHES)}")
    return names


def _run(ns: argparse.Namespace) -> int:
    from calibration.run_config import RunConfig
    from calibration.runner import run

    try:
        only, skip = _benches("--only", ns.only), _benches("--skip", ns.skip)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    if ns.nproc is not None and ns.nproc < 1:
        print(f"--nproc {ns.nproc}: must be at least 1", file=sys.stderr)
        return 2
    if ns.nnodes < 1 or not 0 <= ns.node_rank < ns.nnodes:
        print(f"--node-rank {ns.node_rank} must lie in 0..{ns.nnodes - 1} (--nnodes {ns.nnodes})", file=sys.stderr)
        return 2
    if ns.budget_s is not None and not ns.budget_s > 0:
        print(f"--budget-s {ns.budget_s}: must be a positive number of seconds", file=sys.stderr)
        return 2
    import time

    out = ns.out or Path("runs") / f"calib-{time.strftime('%Y%m%d-%H%M%S')}"
    cfg = RunConfig(mode=ns.mode, out=out, nproc=ns.nproc, resume=ns.resume, only=only, device=ns.device,
                    nnodes=ns.nnodes, node_rank=ns.node_rank, rdzv_endpoint=ns.rdzv_endpoint,
                    rdzv_id=ns.rdzv_id, ifname=ns.ifname, write_profile=not ns.no_profile, budget_s=ns.budget_s,
                    progress=ns.progress, skip=skip, plan_only=ns.plan_only, force=ns.force)
    return run(cfg)


def _quality(ns: argparse.Namespace) -> int:
    from calibration.profile_writer import attach_quality
    from calibration.quality.run import run_quality
    from simulator.profile import ProfileError

    if ns.budget_s is not None and not ns.budget_s > 0:
        print(f"--budget-s {ns.budget_s}: must be a positive number of seconds", file=sys.stderr)
        return 2
    if ns.into is not None and not ns.into.is_file():
        print(f"--into {ns.into}: no such profile file; give the profile.json to add the section to", file=sys.stderr)
        return 2
    try:
        section = run_quality(ns.out, ns.mode, budget_s=ns.budget_s, resume=ns.resume)
    except KeyboardInterrupt:
        print(f"interrupted; the finished points are in {ns.out / 'quality_points.jsonl'}; continue with "
              f"python -m calibration quality --{ns.mode} -o {ns.out} --resume", file=sys.stderr)
        return 130
    if ns.into is not None:
        try:
            attach_quality(ns.into, section)
        except ProfileError as exc:
            print(f"--into {ns.into}: not changed: {exc}", file=sys.stderr)
            return 1
        print(f"quality section written into {ns.into}")
    return 0


def _validate(args: list[str]) -> int:
    try:
        from calibration.validate import main as validate_main
    except ImportError as e:
        print(f"validate is not available: calibration.validate could not be imported ({e})", file=sys.stderr)
        return 2
    return int(validate_main(args) or 0)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] == "validate":
        return _validate(argv[1:])
    if argv and argv[0] == "serve-check":
        from calibration.serve_check import main as serve_check_main

        return serve_check_main(argv[1:])
    ns = _parser().parse_args(argv)
    return _quality(ns) if ns.command == "quality" else _run(ns)
