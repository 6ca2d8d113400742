"""`python -m modelfolio report` writes the PDF the scenario asks for (the decision's when it has a `decision`
section, the same bytes as the Decide page's download), every PDF is titled with the scenario's name, and every
command of README.md's "Command line" and "PDF summary" blocks runs as written."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pypdf import PdfReader
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # `app_pages` is not an installed package; the app imports it from the root

from modelfolio.cli import main  # noqa: E402
from report.pdf import plan_pdf  # noqa: E402
from report.pdf_doc import shown_name  # noqa: E402
from simulator import Scenario, evaluate  # noqa: E402
from simulator.cli import has_decision  # noqa: E402
from simulator.inputs import INPUTS  # noqa: E402

APP = str(ROOT / "app.py")
README = ROOT / "README.md"
EPOCH = "1767323040"  # 2026-01-02 03:04 UTC: SOURCE_DATE_EPOCH fixes the printed date, so bytes can be compared
README_SECTIONS = ("## Command line", "### PDF summary")  # their code blocks run as written
CALIBRATE_SECTION = "## Calibrate on your own hardware"  # measures the machine: only `--help` of its commands
TIMEOUT_S = 300


def title_and_text(data: bytes) -> tuple[str, str]:
    reader = PdfReader(io.BytesIO(data))
    return reader.metadata.title, " ".join(" ".join(page.extract_text().split()) for page in reader.pages)


# ---------------------------------------------------------------- the decision PDF from the command line


def test_report_of_a_decision_scenario_is_the_decision_pdf_titled_with_its_name(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    scenario = json.loads((ROOT / "examples" / "decide_chat_model.json").read_text())
    scenario["decision"] |= {"samples": 200}
    path, out = tmp_path / "decide.json", tmp_path / "decision.pdf"
    path.write_text(json.dumps(scenario))
    assert main(["report", str(path), "-o", str(out)]) == 0
    assert "wrote the decision PDF" in capsys.readouterr().err
    title, text = title_and_text(out.read_bytes())
    assert title == scenario["name"] and text.startswith(scenario["name"] + " 2026-01-02 03:04 UTC")
    assert "The question" in text and "The recommendation" in text and "Training plan" not in text


def test_report_of_a_plain_scenario_is_the_training_plan_titled_with_its_name(tmp_path, capsys):
    path, out = tmp_path / "plain.json", tmp_path / "plan.pdf"
    path.write_text(json.dumps({"name": "Pilot 東京", "model": {"params": 1.3e9}, "cluster": {"gpus": 64}}))
    assert main(["report", str(path), "-o", str(out)]) == 0
    assert "wrote the training plan PDF" in capsys.readouterr().err
    title, text = title_and_text(out.read_bytes())
    assert title == "Training plan: Pilot 東京" and text.startswith("Training plan: Pilot 東京")


def test_only_a_question_makes_the_decision_pdf():
    def scenario(decision: dict) -> Scenario:
        return Scenario.from_dict({"model": {"params": 1e9}, "decision": decision})

    assert has_decision(scenario({"budget_usd": 1e6})) and has_decision(scenario({"objective": "best_quality_within_budget"}))
    assert not has_decision(scenario({})) and not has_decision(scenario({"horizon_months": 24}))  # Deploy's horizon


def test_a_name_of_nothing_visible_falls_back():
    plan = evaluate(Scenario.from_dict({"model": {"preset": "llama-3-8b"}}))
    blank = "\u200b \u200b\t"  # zero-width spaces: a title that would print as nothing
    preset = INPUTS["model.preset"].choice_labels["llama-3-8b"]
    assert title_and_text(plan_pdf(plan, name=blank))[0] == f"Training plan: {preset}"
    assert shown_name(blank) is None and shown_name(" Pilot ") == " Pilot "


@pytest.fixture
def downloads(monkeypatch, fresh_caches):
    """Every download the page offers, by file name: bytes or text, or the callable of a deferred one."""
    seen: dict[str, object] = {}
    add, add_deferred = MediaFileManager.add, MediaFileManager.add_deferred

    def spy(self, data, mimetype, coordinates, file_name=None, *args, **kwargs):
        seen[file_name] = data
        return add(self, data, mimetype, coordinates, file_name, *args, **kwargs)

    def spy_deferred(self, data_callable, mimetype, coordinates, file_name=None, **kwargs):
        seen[file_name] = data_callable
        return add_deferred(self, data_callable, mimetype, coordinates, file_name, **kwargs)

    monkeypatch.setattr(MediaFileManager, "add", spy)
    monkeypatch.setattr(MediaFileManager, "add_deferred", spy_deferred)
    return seen


def test_the_decide_pages_pdf_and_the_command_lines_are_the_same_bytes(downloads, tmp_path, monkeypatch):
    monkeypatch.setenv("SOURCE_DATE_EPOCH", EPOCH)
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()  # the home page: Decide
    downloads.clear()  # this run's downloads only
    at.text_input(key="decide.name").set_value("Chat pilot 月面").run()
    assert not at.exception, [e.value for e in at.exception]
    scenario = next(data for name, data in downloads.items() if name.endswith("-scenario.json"))
    page_pdf = next(data for name, data in downloads.items() if name.endswith(".pdf"))()
    path, out = tmp_path / "page.json", tmp_path / "cli.pdf"
    path.write_text(scenario if isinstance(scenario, str) else scenario.decode())
    assert main(["report", str(path), "-o", str(out)]) == 0
    assert out.read_bytes() == page_pdf
    title, text = title_and_text(page_pdf)
    assert title == "Chat pilot 月面"
    shown = [c.value for c in at.caption] + [m.value for m in at.markdown]  # the page says what the PDF says
    for start in ("Predicted loss against total cost", "Total cost P10-P90 (Monte Carlo"):
        words = next(v for v in shown if v.startswith(start)).replace("\\$", "$")
        assert " ".join(words.split()) in text, words


# ---------------------------------------------------------------- README.md's commands, as written


def readme_commands(*sections: str) -> list[str]:
    """The shell commands of the code blocks under these headings (continuations joined, comments dropped)."""
    text = README.read_text(encoding="utf-8")
    commands = []
    for heading in sections:
        body = text.split(heading + "\n", 1)[1]
        body = re.split(r"\n#{2,3} ", body, maxsplit=1)[0]
        for block in re.findall(r"```sh\n(.*?)```", body, flags=re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" #", 1)[0].strip()
                if line and not line.startswith("#"):
                    commands.append(line)
    return commands


def _check_output(argv: list[str], stdout: str, workdir: Path) -> None:
    """The output each command promises, by its kind."""
    command = argv[argv.index("-m") + 2]
    if command == "decide":
        assert json.loads(stdout)["recommendation"]["total_cost_usd"] > 0
    elif command == "evaluate":
        assert json.loads(stdout)["training"]["wall_days"] > 0
    elif command == "catalog":
        assert "H100" in stdout and len(stdout.splitlines()) >= 5
    elif command == "sweep":
        out = workdir / argv[argv.index("--out") + 1]
        rows = list(csv.DictReader(out.open()))
        assert rows and "cluster.gpus" in rows[0]
    elif command == "report":
        out = workdir / argv[argv.index("-o") + 1]
        scenario = json.loads((workdir / argv[argv.index("report") + 1]).read_text())
        title, text = title_and_text(out.read_bytes())
        if "decision" in scenario:
            assert title == scenario["name"] and "The recommendation" in text
        else:
            assert title.startswith("Training plan: ") and "Key figures" in text
    else:
        raise AssertionError(f"README command {command!r} has no expected output here; add it")


COMMANDS = readme_commands(*README_SECTIONS)


def test_the_readme_lists_the_commands_this_test_runs():
    kinds = {shlex.split(c)[shlex.split(c).index("-m") + 2] for c in COMMANDS}
    assert {"decide", "report", "evaluate", "sweep", "catalog"} <= kinds


@pytest.mark.parametrize("command", COMMANDS)
def test_each_readme_command_runs_as_written(command, tmp_path):
    argv = shlex.split(command)
    assert argv[0] == ".venv/bin/python", command
    argv[0] = sys.executable
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    assert done.returncode == 0, f"{command}\n{done.stderr[-2000:]}"
    _check_output(argv, done.stdout, tmp_path)


@pytest.mark.parametrize("subcommand", sorted({shlex.split(c)[3] for c in readme_commands(CALIBRATE_SECTION)}))
def test_the_readmes_calibration_commands_exist(subcommand):
    argv = [sys.executable, "-m", "calibration", subcommand, "--help"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert done.returncode == 0 and "usage" in done.stdout.lower(), done.stderr[-2000:]
