"""The layers hold (import-linter, `.importlinter`, run by `make test`): the tree keeps every contract, and a tree
that breaks one (the simulator importing the report; two modules importing each other) is caught."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".importlinter"
PACKAGES = ("simulator", "report", "calibration", "app_pages", "modelfolio")


def _lint(cwd: Path, config: Path) -> subprocess.CompletedProcess[str]:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    return subprocess.run([lint, "--config", str(config), "--no-cache"], cwd=cwd, capture_output=True, text=True,
                          timeout=300, check=False)


def _toy_tree(tmp_path: Path, modules: dict[str, str]) -> Path:
    """The five packages, empty but for `modules` (path -> source), and the project's contracts with the cycle
    check over the top-level packages only (the toy has no subpackages)."""
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    for path, source in modules.items():
        (tmp_path / path).write_text(source)
    config = configparser.ConfigParser()
    config.read(CONFIG)
    config["importlinter:contract:no-cycles"]["ancestors"] = "\n" + "\n".join(PACKAGES)
    with (tmp_path / ".importlinter").open("w") as f:
        config.write(f)
    return tmp_path / ".importlinter"


def test_the_tree_keeps_its_layers():
    run = _lint(ROOT, CONFIG)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout


def test_the_simulator_importing_the_report_is_caught(tmp_path):
    config = _toy_tree(tmp_path, {"report/pdf.py": "X = 1\n",
                                  "simulator/cli.py": "def pdf():\n    from report.pdf import X  # lazily: still caught\n"
                                                      "    return X\n"})
    run = _lint(tmp_path, config)
    assert run.returncode != 0
    assert "The simulator imports no layer above it" in run.stdout and "simulator.cli -> report.pdf" in run.stdout


def test_an_import_cycle_inside_a_package_is_caught(tmp_path):
    config = _toy_tree(tmp_path, {"calibration/hook.py": "def go():\n    from calibration.run import run\n    run()\n",
                                  "calibration/run.py": "from calibration.hook import go\n\ndef run():\n    pass\n"})
    run = _lint(tmp_path, config)
    assert run.returncode != 0 and "No cycles are allowed in calibration" in run.stdout
