from pathlib import Path

import numpy as np

from benchmarks.megatron_fidelity import SHARED_CSV, TABLE1_CSV, load_table1, predict


def test_megatron_table1_fidelity():
    # deterministic regression: median |error| <= 8%, worst <= 15% with one set of constants
    _t, out, err = predict()
    assert np.median(np.abs(err)) <= 8.0
    assert np.max(np.abs(err)) <= 15.0
    # and the model explains the rise with size: the largest models beat the smallest
    assert out["hw_tflops_per_gpu"][-1] > out["hw_tflops_per_gpu"][0] * 1.1
    assert np.all(np.diff(out["gemm_efficiency"][:4]) > 0)


def test_embedded_table_matches_shared_reference():
    if Path(SHARED_CSV).exists():
        shared = load_table1(Path(SHARED_CSV).read_text())
        embedded = load_table1(TABLE1_CSV)
        for key, v in shared.items():
            np.testing.assert_array_equal(embedded[key], v, err_msg=key)
