"""The simulator's command line: `python -m simulator evaluate SCENARIO.json` (JSON plan), `... decide` (the
recommended plan, its Pareto front, uncertainty and sensitivity, as JSON), `... sweep` (CSV) and `... catalog`.
The PDF (`report`) is the product's command, `python -m modelfolio report` (modelfolio/cli.py), which sits above
the simulator and the report: the simulator imports neither the report nor the app.

Every input problem ends with `error: ...` lines on standard error and exit code 2, never a traceback:
scenarios and grids are parsed by the one bounded reader (simulator.safe_json), `--out` is checked before
the sweep or report runs (not a directory, its folder exists, not an input file, no overwrite without
`--force`), and a reader that leaves early (`... | head -1`) ends the command quietly with exit code 0. The helpers the
product's command shares (`read_scenario`, `check_out`, `write_out`, `has_decision`) are public here.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from simulator.catalog import load_catalog
from simulator.evaluator import evaluate
from simulator.safe_json import loads
from simulator.safe_json_errors import JSONInputError, shorten
from simulator.safe_json_limits import MAX_SCENARIO_BYTES
from simulator.safe_json_read import read_bytes, read_stream, source_name
from simulator.scenario import Scenario, ScenarioError
from simulator.sweeps import sweep

EXIT_BAD_INPUT = 2
MAX_GRID_CHARS = 10_000  # one `--grid KEY=V1,V2,...` argument; a longer one is refused without being parsed
MAX_MESSAGE_CHARS = 300  # argparse's own messages (they quote the argument) are cut to this
MAX_PROBLEMS_SHOWN = 20  # error lines printed; the rest are counted (10,000 unknown keys are not 10,000 lines)


class _Parser(argparse.ArgumentParser):
    """argparse that never echoes a huge argument back whole."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        if len(message) > MAX_MESSAGE_CHARS:
            message = f"{message[:MAX_MESSAGE_CHARS]}... ({len(message):,} characters)"
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}\n")


def read_scenario(path: str) -> Scenario:
    source = "standard input" if path == "-" else source_name(path)
    try:
        if path == "-":
            if sys.stdin is None:
                raise JSONInputError(source, "cannot read: standard input is closed", kind="read")
            data = read_stream(getattr(sys.stdin, "buffer", sys.stdin), max_bytes=MAX_SCENARIO_BYTES, source=source)
        else:
            data = read_bytes(path, max_bytes=MAX_SCENARIO_BYTES, source=source)
    except JSONInputError as exc:
        raise ScenarioError([str(exc)]) from None
    return Scenario.from_json(data, source=source)


def _parse_value(text: str, key: str) -> Any:
    """A --grid value: JSON (numbers, true/false, null, "quoted") through the bounded reader, else the text."""
    try:
        return loads(text, source=f"--grid {key}")
    except JSONInputError as exc:
        if exc.kind == "syntax":
            return text  # a name such as H100-SXM or selective
        raise ScenarioError([str(exc)]) from None


def _grid_json(text: str) -> Any:
    """--grid-json: inline JSON when it starts with { or [, else the name of a JSON file."""
    if text.lstrip()[:1] in ("{", "["):
        return loads(text, source="--grid-json", max_bytes=MAX_SCENARIO_BYTES)
    source = f"--grid-json {source_name(text)}"
    return loads(read_bytes(text, max_bytes=MAX_SCENARIO_BYTES, source=source), source=source,
                 max_bytes=MAX_SCENARIO_BYTES)


def _parse_grid(items: list[str], grid_json: str | None) -> dict[str, list[Any]]:
    grid: dict[str, list[Any]] = {}
    if grid_json:
        try:
            loaded = _grid_json(grid_json)
        except JSONInputError as exc:
            raise ScenarioError([f"{exc}; expected a JSON object {{\"cluster.gpus\": [64, 128]}} or a file of one"]) \
                from None
        if not isinstance(loaded, dict):
            raise ScenarioError(["--grid-json: expected a JSON object of dotted keys to lists of values, got "
                                 f"{type(loaded).__name__}"])
        grid.update({k: v if isinstance(v, list) else [v] for k, v in loaded.items()})
    for item in items:
        if len(item) > MAX_GRID_CHARS:
            raise ScenarioError([f"--grid {shorten(item)}: {len(item):,} characters, over the {MAX_GRID_CHARS:,}-"
                                 "character cap for one --grid; use --grid-json for long lists"])
        key, sep, values = item.partition("=")
        if not sep or not values:
            raise ScenarioError([f"--grid {shorten(item)}: write KEY=V1,V2,... for example cluster.gpus=64,128,256"])
        key = key.strip()
        grid[key] = [_parse_value(v.strip(), source_name(key, 60)) for v in values.split(",")]
    if not grid:
        raise ScenarioError(["sweep: give at least one --grid KEY=V1,V2 (or --grid-json)"])
    return grid


def _finite(value: Any) -> Any:
    """The plan with non-finite numbers as null, so that standard output is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _to_stdout(write: Callable[[Any], Any]) -> None:
    """Run `write(sys.stdout)` and flush inside the guard, so that a closed pipe (BrokenPipeError, handled in
    `main`) or a full disk (a message) surfaces here rather than at interpreter exit."""
    if sys.stdout is None:
        raise ScenarioError(["standard output is closed; redirect it or use --out"])
    try:
        write(sys.stdout)
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        _quiet_stdout()
        raise ScenarioError([f"standard output: cannot write ({exc.strerror or type(exc).__name__})"]) from None


def _cmd_evaluate(args: argparse.Namespace) -> int:
    plan = _finite(evaluate(read_scenario(args.scenario)).to_dict())
    _to_stdout(lambda f: f.write(json.dumps(plan, indent=2, allow_nan=False) + "\n"))
    return 0


def _cmd_decide(args: argparse.Namespace) -> int:
    from simulator.decision import decide  # the search is only loaded by the command that needs it

    result = _finite(decide(read_scenario(args.scenario)).to_dict())
    _to_stdout(lambda f: f.write(json.dumps(result, indent=2, allow_nan=False, ensure_ascii=False) + "\n"))
    return 0


def _same_file(a: str, b: str) -> bool:
    try:
        return Path(a).samefile(b)
    except (OSError, ValueError):
        return False


def check_out(args: argparse.Namespace, command: str = "sweep", example: str = "sweep.csv") -> Path | None:
    """The --out path, refused (ScenarioError) before the command runs if it cannot or should not be written."""
    if args.out is None:
        return None
    if not args.out:
        raise ScenarioError([f"--out: give a file name, such as {example}"])
    shown = source_name(args.out)
    out = Path(args.out)
    try:
        if out.is_dir():
            raise ScenarioError([f"--out {shown}: is a directory; give a file name such as {shown}/{example}"])
        if not out.parent.is_dir():
            raise ScenarioError([f"--out {shown}: the folder {source_name(str(out.parent))} does not exist; "
                                 "create it first"])
        inputs = [p for p in (args.scenario, getattr(args, "grid_json", None)) if p and p != "-"]
        if out.exists() and any(_same_file(args.out, p) for p in inputs):
            raise ScenarioError([f"--out {shown}: is an input of this {command}; write the "
                                 f"{Path(example).suffix[1:].upper()} to another file"])
        if out.exists() and not args.force:
            raise ScenarioError([f"--out {shown}: already exists; add --force to overwrite it"])
    except ScenarioError:
        raise
    except OSError as exc:
        raise ScenarioError([f"--out {shown}: cannot write there ({exc.strerror or type(exc).__name__})"]) from None
    except ValueError as exc:  # a NUL in the name
        raise ScenarioError([f"--out {shown}: not a usable file name ({shorten(str(exc), 120)})"]) from None
    return out


def _write_csv(frame: Any, out: Path, force: bool) -> None:
    write_out(out, force, lambda f: frame.to_csv(f, index=False), text=True)


def write_out(out: Path, force: bool, write: Callable[[Any], Any], text: bool) -> None:
    """Run `write(file)` on --out: created exclusively unless --force, removed again if writing fails."""
    created = False
    try:
        mode = ("w" if force else "x") + ("" if text else "b")
        with (out.open(mode, newline="", encoding="utf-8") if text else out.open(mode)) as f:
            created = not force
            write(f)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the name (only from main(argv) in Python)
        if created:
            out.unlink(missing_ok=True)  # no half-written file left behind
        what = ("already exists; add --force to overwrite it" if isinstance(exc, FileExistsError) else
                f"cannot write ({getattr(exc, 'strerror', None) or shorten(str(exc), 120)})")
        raise ScenarioError([f"--out {source_name(str(out))}: {what}"]) from None


def _columns(items: list[str] | None) -> list[str] | None:
    """--columns A,B (repeatable) as a list of names; None when not given (the sweep's default figures)."""
    if not items:
        return None
    if sum(len(item) for item in items) > MAX_GRID_CHARS:
        raise ScenarioError([f"--columns: over the {MAX_GRID_CHARS:,}-character cap; name fewer figures or families"])
    names = [name.strip() for item in items for name in item.split(",") if name.strip()]
    if not names:
        raise ScenarioError(["--columns: give figure names or families, such as training.wall_days,serving"])
    return names


def _cmd_sweep(args: argparse.Namespace) -> int:
    out = check_out(args)
    frame = sweep(read_scenario(args.scenario), _parse_grid(args.grid, args.grid_json), columns=_columns(args.columns))
    if out is not None:
        _write_csv(frame, out, args.force)
        print(f"wrote {len(frame)} rows ({int(frame['valid'].sum())} valid) to {source_name(str(out))}",
              file=sys.stderr)
    else:
        _to_stdout(lambda f: frame.to_csv(f, index=False))  # streamed in chunks; a reader that leaves: main
    return 0


SHARED_DECISION_KEYS = ("decision.horizon_months",)  # also the Deploy page's money horizon: not a question alone


def has_decision(scenario: Scenario) -> bool:
    """True when the scenario asks a question (a `decision` section with a key of its own, not only the horizon the
    Deploy page's money shares): `report` then writes the decision's PDF, as the Decide page's download does."""
    return any(key.startswith("decision.") and key not in SHARED_DECISION_KEYS for key in scenario.given)


def _cmd_report_moved(args: argparse.Namespace) -> int:
    raise ScenarioError([f"report: the PDF is written by the product's command, which sits above the simulator and "
                         f"the report: python -m modelfolio report {shorten(args.scenario, 120)} -o "
                         f"{shorten(args.out or 'plan.pdf', 120)}"])


def _cmd_catalog(_: argparse.Namespace) -> int:
    lines = [f"{spec.id:15s} {spec.display_name:32s} bf16 {spec.peak_tflops.get('bf16', float('nan')):7.1f} TFLOP/s  "
             f"{spec.hbm_GB:5.0f} GB  ${spec.gpu_hour_usd:.2f}/h ({spec.price_date})\n" for spec in load_catalog().values()]
    _to_stdout(lambda f: f.writelines(lines))
    return 0


def build_parser(prog: str = "python -m simulator",
                 extra: Callable[[Any], None] | None = None) -> argparse.ArgumentParser:
    """The simulator's commands; `extra(subparsers)` adds more (the product's `report`, modelfolio.cli); without it
    `report` says which command writes the PDF."""
    parser = _Parser(prog=prog, description="Modelfolio: training, compression, serving and money of a model plan")
    sub = parser.add_subparsers(dest="command", required=True)
    ev = sub.add_parser("evaluate", help="print the plan of one scenario as JSON")
    ev.add_argument("scenario", help="scenario JSON file, or - for standard input")
    ev.set_defaults(func=_cmd_evaluate)
    de = sub.add_parser("decide", help="search model size, tokens, cluster, compression and serving for the plan "
                                       "the scenario's decision section asks for; print JSON")
    de.add_argument("scenario", help="scenario JSON file, or - for standard input")
    de.set_defaults(func=_cmd_decide)
    sw = sub.add_parser("sweep", help="evaluate a grid of scenarios, write CSV")
    sw.add_argument("scenario", help="base scenario JSON file, or - for standard input")
    sw.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2", help="dotted key and values; repeatable")
    sw.add_argument("--grid-json", help="JSON object (or file) of dotted keys to value lists")
    sw.add_argument("--columns", action="append", metavar="NAME,...",
                    help="figures to compute: dotted keys (serving.tpot_s), family names (training, goodput, cost, "
                         "compression, quality, serving, finance, decision) or all; only the families they need run. "
                         "Default: the training plan's figures and those of the families whose inputs the scenario "
                         "gives or the grid sweeps; repeatable")
    sw.add_argument("--out", help="CSV file to write (default: standard output); never an input file")
    sw.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    sw.set_defaults(func=_cmd_sweep)
    cat = sub.add_parser("catalog", help="list the accelerators of the hardware catalog")
    cat.set_defaults(func=_cmd_catalog)
    if extra is not None:
        extra(sub)
    else:
        rp = sub.add_parser("report", help="moved: python -m modelfolio report SCENARIO.json -o plan.pdf")
        rp.add_argument("scenario")
        rp.add_argument("-o", "--out")
        rp.add_argument("--force", action="store_true")
        rp.set_defaults(func=_cmd_report_moved)
    return parser


def _quiet_stdout() -> None:
    """The reader of standard output left: point it at /dev/null so the exit-time flush cannot fail too."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no real file descriptor (captured output)
        pass


def _report(problems: list[str]) -> int:
    shown = problems[:MAX_PROBLEMS_SHOWN]
    if len(problems) > len(shown):
        shown.append(f"... and {len(problems) - len(shown):,} more problems")
    try:
        for problem in shown:
            print(f"error: {problem}", file=sys.stderr)
    except (BrokenPipeError, ValueError):  # standard error closed too: nothing more to say
        pass
    return EXIT_BAD_INPUT


def main(argv: list[str] | None = None, prog: str = "python -m simulator",
         extra: Callable[[Any], None] | None = None) -> int:
    try:
        args = build_parser(prog, extra).parse_args(argv)
    except SystemExit as exc:  # usage errors (exit 2, message printed) and --help (exit 0)
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    try:
        return args.func(args)
    except BrokenPipeError:  # `... | head -1`: the reader left; say nothing more
        _quiet_stdout()
        return 0
    except ScenarioError as exc:
        return _report(exc.problems)
    except JSONInputError as exc:  # every reader wraps its own; this is the backstop
        return _report([str(exc)])
