
import numpy as np

from benchmarks.megatron_fidelity import (
    evaluate_api,
    evaluate_cli,
    load_table1,
    predict,
    table1_scenario,
)


def test_megatron_table1_fidelity():
    # deterministic regression through the public path (Scenario.from_dict + evaluate, the catalog's A100):
    # one set of constants; issue 19: the median bias inside +-5% (+5.9% while the rows set the step-time
    # spread to 0 and no DP overlap for the torch-DDP rows, which their sources do not state; now +4.7%),
    # median |error| <= 5.5%, worst <= 9% (measured 4.7% and 8.5%)
    _t, out, err = predict()
    assert abs(np.median(err)) <= 5.0
    assert np.median(np.abs(err)) <= 5.5
    assert np.max(np.abs(err)) <= 9.0
    # and the model explains the rise with size: the largest models beat the smallest
    assert out["hw_tflops_per_gpu"][-1] > out["hw_tflops_per_gpu"][0] * 1.1
    assert np.all(np.diff(out["gemm_efficiency"][:4]) > 0)


def test_table1_scenario_is_plain_json_and_cli_agrees_with_the_api():
    # the printed benchmark goes through `python -m simulator evaluate FILE.json`: same plan as the Python API
    scenario = table1_scenario(4)
    assert scenario["cluster"]["accelerator"] == "A100-80GB-SXM" and scenario["training"]["precision"] == "fp16"
    cli = evaluate_cli([scenario])[0]["training"]["hw_tflops_per_gpu"]
    api = evaluate_api([scenario])[0]["training"]["hw_tflops_per_gpu"]
    assert cli == api


def test_table1_has_its_rows_as_columns():
    published = load_table1()
    assert len(published["tflops_per_gpu"]) == 10  # Narayanan et al. 2021 Table 1: 1.7B to 1T parameters
    assert all(len(v) == len(published["tflops_per_gpu"]) for v in published.values())

