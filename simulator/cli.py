"""Command line: `python -m simulator evaluate SCENARIO.json` (JSON plan) and `... sweep` (CSV)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from simulator.catalog import load_catalog
from simulator.evaluator import evaluate
from simulator.scenario import Scenario, ScenarioError
from simulator.sweeps import sweep

EXIT_BAD_INPUT = 2


def _read_scenario(path: str) -> Scenario:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ScenarioError([f"{path}: cannot read the scenario file ({exc.strerror})"]) from exc
    except UnicodeDecodeError as exc:
        raise ScenarioError([f"{path}: not a UTF-8 text file"]) from exc
    return Scenario.from_json(text)


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _parse_grid(items: list[str], grid_json: str | None) -> dict[str, list[Any]]:
    grid: dict[str, list[Any]] = {}
    if grid_json:
        try:
            loaded = json.loads(Path(grid_json).read_text(encoding="utf-8") if Path(grid_json).is_file() else grid_json)
        except (json.JSONDecodeError, OSError) as exc:
            raise ScenarioError([f"--grid-json: expected a JSON object {{\"cluster.gpus\": [64, 128]}} or a file of one ({exc})"]) from exc
        if not isinstance(loaded, dict):
            raise ScenarioError(["--grid-json: expected a JSON object of dotted keys to lists of values"])
        grid.update({k: v if isinstance(v, list) else [v] for k, v in loaded.items()})
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not values:
            raise ScenarioError([f"--grid {item!r}: write KEY=V1,V2,... for example cluster.gpus=64,128,256"])
        grid[key.strip()] = [_parse_value(v.strip()) for v in values.split(",")]
    if not grid:
        raise ScenarioError(["sweep: give at least one --grid KEY=V1,V2 (or --grid-json)"])
    return grid


def _cmd_evaluate(args: argparse.Namespace) -> int:
    plan = evaluate(_read_scenario(args.scenario))
    json.dump(plan.to_dict(), sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


def _cmd_sweep(args: argparse.Namespace) -> int:
    frame = sweep(_read_scenario(args.scenario), _parse_grid(args.grid, args.grid_json))
    if args.out:
        frame.to_csv(args.out, index=False)
        print(f"wrote {len(frame)} rows ({int(frame['valid'].sum())} valid) to {args.out}", file=sys.stderr)
    else:
        frame.to_csv(sys.stdout, index=False)
    return 0


def _cmd_catalog(_: argparse.Namespace) -> int:
    for spec in load_catalog().values():
        print(f"{spec.id:15s} {spec.display_name:32s} bf16 {spec.peak_tflops.get('bf16', float('nan')):7.1f} TFLOP/s  "
              f"{spec.hbm_GB:5.0f} GB  ${spec.gpu_hour_usd:.2f}/h ({spec.price_date})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m simulator", description="Modelfolio training planner")
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("evaluate", help="print the plan of one scenario as JSON")
    ev.add_argument("scenario", help="scenario JSON file, or - for standard input")
    ev.set_defaults(func=_cmd_evaluate)
    sw = sub.add_parser("sweep", help="evaluate a grid of scenarios, write CSV")
    sw.add_argument("scenario", help="base scenario JSON file, or - for standard input")
    sw.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2", help="dotted key and values; repeatable")
    sw.add_argument("--grid-json", help="JSON object (or file) of dotted keys to value lists")
    sw.add_argument("--out", help="CSV file to write (default: standard output)")
    sw.set_defaults(func=_cmd_sweep)
    cat = sub.add_parser("catalog", help="list the accelerators of the hardware catalog")
    cat.set_defaults(func=_cmd_catalog)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except BrokenPipeError:  # `... | head -1`: the reader left; say nothing more
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except ScenarioError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return EXIT_BAD_INPUT
