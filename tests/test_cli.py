import csv
import io
import json
import subprocess
import sys

import pytest

from simulator.cli import main

SCENARIO = {
    "model": {"layers": 32, "hidden": 4096, "heads": 32, "mlp": "swiglu", "vocab": 32000, "seq_len": 4096},
    "training": {"tokens": 2e12, "global_batch_seqs": 1024, "micro_batch_seqs": 1, "recompute": "selective", "zero_stage": 1},
    "cluster": {"accelerator": "H100-SXM", "gpus": 512, "gpus_per_node": 8, "tp": 2, "pp": 1, "sync": "ring"},
    "finance": {"gpu_hour_usd": 2.5},
}
TRAINING_KEYS = ["flops_total", "step_time_s", "tokens_per_s", "tflops_per_gpu", "hw_tflops_per_gpu", "mfu", "hfu",
                 "wall_days", "gpu_hours", "cost_usd", "energy_mwh", "memory_per_gpu_gb", "fits_memory"]


@pytest.fixture
def scenario_file(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps(SCENARIO))
    return path


def test_evaluate_prints_the_plan_contract(scenario_file, capsys):
    assert main(["evaluate", str(scenario_file)]) == 0
    plan = json.loads(capsys.readouterr().out)
    for key in TRAINING_KEYS:
        assert key in plan["training"], key
    assert plan["quality"]["loss"] > 1.69
    assert plan["training"]["hw_tflops_per_gpu"] >= plan["training"]["tflops_per_gpu"]
    assert plan["training"]["cost_usd"] == pytest.approx(plan["training"]["gpu_hours"] * 2.5)
    assert plan["provenance"]["training.cost_usd"]["provenance"] == "computed"
    assert "price your input" in plan["provenance"]["training.cost_usd"]["basis"]


def test_missing_optional_keys_take_defaults(tmp_path, capsys):
    path = tmp_path / "min.json"
    path.write_text(json.dumps({"model": {"params": 1.3e9}}))
    assert main(["evaluate", str(path)]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["scenario"]["cluster"]["accelerator"] == "H100-SXM"
    assert plan["notes"]


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"model": {"params": -5}}), "model.params = -5"),
        (json.dumps({**SCENARIO, "cluster": {**SCENARIO["cluster"], "tp": 3}}), "cluster.tp = 3"),
        (json.dumps({**SCENARIO, "cluster": {**SCENARIO["cluster"], "accelerator": "TPU9"}}), "cluster.accelerator"),
    ],
)
def test_bad_input_exits_2_with_a_message(tmp_path, capsys, content, needle):
    path = tmp_path / "bad.json"
    path.write_text(content)
    assert main(["evaluate", str(path)]) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_missing_file_exits_2(capsys, tmp_path):
    assert main(["evaluate", str(tmp_path / "nope.json")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_sweep_writes_csv(scenario_file, tmp_path):
    out = tmp_path / "sweep.csv"
    assert main(["sweep", str(scenario_file), "--grid", "cluster.gpus=256,512,1024", "--grid", "training.zero_stage=0,3",
                 "--out", str(out)]) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == 6
    assert {r["cluster.gpus"] for r in rows} == {"256", "512", "1024"}
    assert all(r["valid"] == "True" for r in rows)
    days = {float(r["cluster.gpus"]): float(r["training.wall_days"]) for r in rows if r["training.zero_stage"] == "0"}
    assert days[256] > days[512] > days[1024]


def test_sweep_bad_grid_exits_2(scenario_file, capsys):
    assert main(["sweep", str(scenario_file), "--grid", "cluster.gpuz=1,2"]) == 2
    assert "unknown key" in capsys.readouterr().err
    assert main(["sweep", str(scenario_file), "--grid", "cluster.gpus"]) == 2


def test_module_entry_point_runs_without_traceback(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"model": {"params": "big"}}))
    proc = subprocess.run([sys.executable, "-m", "simulator", "evaluate", str(bad)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "model.params" in proc.stderr and "Traceback" not in proc.stderr


def test_the_simulators_report_command_names_the_products(tmp_path, capsys):
    """The simulator imports no report: its `report` says which command writes the PDF, and that one does."""
    from modelfolio.cli import main as product

    path = tmp_path / "s.json"
    path.write_text('{"model": {"params": 1e9}}')
    assert main(["report", str(path), "-o", str(tmp_path / "p.pdf")]) == 2
    err = capsys.readouterr().err
    assert "python -m modelfolio report" in err and str(path.name) in err
    assert product(["report", str(path), "-o", str(tmp_path / "p.pdf")]) == 0
    assert (tmp_path / "p.pdf").read_bytes().startswith(b"%PDF")
    assert product(["evaluate", str(path)]) == 0  # the simulator's commands too


def test_the_memory_warning_is_one_sentence_built_by_its_rule(tmp_path, capsys):
    """The CLI's JSON, the Train page and the PDF show the sentence the rule builds: the accelerator's name with
    its article, the sizes in whole gigabytes."""
    from simulator.words import does_not_fit

    path = tmp_path / "s.json"
    path.write_text('{"model": {"params": 7e10}, "cluster": {"gpus": 8, "tp": 1, "pp": 1, '
                    '"accelerator": "A100-80GB-SXM"}, "training": {"zero_stage": 0}}')
    assert main(["evaluate", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)
    memory = next(w for w in out["warnings"] if w["code"] == "memory")
    assert memory["message"].startswith("Does not fit: needs ") and ", but an A100 SXM4 80GB has 80 GB." in memory["message"]
    assert does_not_fit(96.04, 80.0, "NVIDIA H100 SXM5 80GB") == "Does not fit: needs 96 GB per GPU, but an H100 SXM5 80GB has 80 GB."
    assert does_not_fit(2.44, 0.5, "Google TPU v5e") == "Does not fit: needs 2.4 GB per GPU, but a TPU v5e has 0.5 GB."
