"""`python -m modelfolio evaluate | decide | sweep | catalog | report`: the simulator's commands (simulator.cli) and
`report`, which writes one scenario as a PDF (`-o plan.pdf`: the decision's for a scenario with a `decision`
section, as the Decide page's download, else the training plan's). This module sits above the simulator and the
report, so that neither the simulator imports the report nor the report the command line."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from simulator.cli import check_out, has_decision, read_scenario, write_out
from simulator.cli import main as simulator_main
from simulator.evaluator import evaluate
from simulator.safe_json_read import source_name
from simulator.scenario import Scenario, ScenarioError

PROG = "python -m modelfolio"


def report_pdf(scenario: Scenario, fallback_name: str) -> tuple[str, bytes]:
    """(what the PDF is, its bytes): the decision's PDF for a scenario with a `decision` section, else the training
    plan's; titled with the scenario's `name`, else `fallback_name`."""
    try:  # lazily: the simulator's commands run without the report's dependencies
        from report.decision_pdf import decision_pdf
        from report.pdf import plan_pdf
        from report.pdf_doc import shown_name
    except ImportError as exc:
        raise ScenarioError([f"report: the PDF needs fpdf2 and vl-convert-python ({exc}); "
                             "pip install -e . installs them"]) from None
    name = shown_name(scenario.name) or fallback_name
    if has_decision(scenario):
        from simulator.decision import decide

        return "decision", decision_pdf(decide(scenario), name=name)
    from simulator.scaling import gpu_sweep

    return "training plan", plan_pdf(evaluate(scenario), gpu_sweep(scenario), name=name)


def _cmd_report(args: argparse.Namespace) -> int:
    out = check_out(args, command="report", example="plan.pdf")
    scenario = read_scenario(args.scenario)
    kind, data = report_pdf(scenario, "standard input" if args.scenario == "-" else Path(args.scenario).name)
    write_out(out, args.force, lambda f: f.write(data), text=False)
    print(f"wrote the {kind} PDF, {len(data):,} bytes, to {source_name(str(out))}", file=sys.stderr)
    return 0


def add_report(sub: Any) -> None:
    """The `report` command, added to the simulator's subcommands."""
    rp = sub.add_parser("report", help="write one scenario as a PDF summary: the decision's when it has a decision "
                                       "section (as the Decide page's download), else the training plan's")
    rp.add_argument("scenario", help="scenario JSON file, or - for standard input")
    rp.add_argument("-o", "--out", required=True, help="PDF file to write; never the input file")
    rp.add_argument("--force", action="store_true", help="overwrite an existing --out file")
    rp.set_defaults(func=_cmd_report)


def main(argv: list[str] | None = None) -> int:
    return simulator_main(argv, prog=PROG, extra=add_report)
