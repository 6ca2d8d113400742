import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.scenario import Scenario, ScenarioError

GPT3 = {
    "model": {"layers": 96, "hidden": 12288, "heads": 96, "vocab": 50257, "seq_len": 2048},
    "training": {"tokens": 300e9, "global_batch_seqs": 1536, "micro_batch_seqs": 1, "recompute": "full"},
    "cluster": {"accelerator": "A100-80GB-SXM", "gpus": 1024, "tp": 8, "pp": 8},
}


def problems_of(data) -> list[str]:
    with pytest.raises(ScenarioError) as err:
        Scenario.from_dict(data)
    return err.value.problems


def test_json_round_trip_is_identity():
    s = Scenario.from_dict(GPT3)
    again = Scenario.from_json(s.to_json())
    assert again == s
    assert json.loads(again.to_json()) == s.to_dict()


def test_defaults_are_filled_and_explained():
    s = Scenario.from_dict({"model": {"params": 7e9}})
    assert (s.model.layers, s.model.hidden, s.model.heads) == (32, 4096, 32)
    assert s.model.ffn_hidden == 4 * 4096
    assert s.training.tokens == pytest.approx(20 * s.model.params)
    assert s.finance.gpu_hour_usd > 0
    assert any("derived from model.params" in n for n in s.notes)
    assert any("20 × model.params" in n for n in s.notes)


def test_derived_shape_matches_gpt3_family():
    s = Scenario.from_dict({"model": {"params": 175e9, "vocab": 50257}, "cluster": {"gpus": 8}})
    assert (s.model.layers, s.model.hidden, s.model.heads) == (96, 12288, 96)
    assert s.model.params == pytest.approx(175e9, rel=0.02)


def test_tp_must_divide_heads_and_message_names_field_value_and_way_out():
    data = json.loads(json.dumps(GPT3))
    data["cluster"].update(tp=7, pp=1, gpus=7 * 16)
    text = "\n".join(problems_of(data))
    assert "cluster.tp = 7" in text and "heads (96)" in text and "try" in text


def test_gpu_count_must_be_product_of_degrees():
    data = json.loads(json.dumps(GPT3))
    data["cluster"]["gpus"] = 1000
    text = "\n".join(problems_of(data))
    assert "cluster.gpus = 1000" in text and "tp×cp×pp" in text


def test_uneven_pipeline_stages_are_planned_and_impossible_splits_refused():
    data = json.loads(json.dumps(GPT3))
    data["cluster"].update(pp=5, gpus=8 * 5 * 8)
    assert Scenario.from_dict(data).cluster.pp == 5  # 96 layers over 5 stages: uneven, balanced by the planner
    data["cluster"].update(first_stage_layers=50, last_stage_layers=45)
    assert any("cluster.first_stage_layers = 50" in p and "model.layers (96)" in p for p in problems_of(data))
    data["cluster"].update(pp=200, gpus=8 * 200 * 8, first_stage_layers=None, last_stage_layers=None)
    assert any("cluster.pp = 200" in p and "at most 96" in p for p in problems_of(data))
    data["cluster"].update(pp=5, gpus=8 * 5 * 8)
    data["training"]["interleave"] = 2  # 96 = 5 stages of whole virtual stages of 2 layers: the planner splits
    assert Scenario.from_dict(data).training.interleave == 2
    data["training"]["interleave"] = 5  # 96 layers are no whole number of virtual stages of 5
    assert any("cluster.pp = 5" in p and "pp×interleave" in p for p in problems_of(data))


def test_global_batch_need_not_divide_but_must_feed_every_rank():
    data = json.loads(json.dumps(GPT3))
    data["training"]["global_batch_seqs"] = 1000
    assert Scenario.from_dict(data).training.global_batch_seqs == 1000
    data["training"]["global_batch_seqs"] = 3
    assert any("training.global_batch_seqs = 3" in p and "at least one sequence" in p for p in problems_of(data))


def test_unknown_key_and_section_suggest_the_right_name():
    assert any('did you mean "training.tokens"' in p for p in problems_of({"model": {"params": 1e9}, "training": {"tokenz": 1}}))
    assert any('did you mean "cluster"' in p for p in problems_of({"model": {"params": 1e9}, "clustre": {}}))


def test_unknown_accelerator_lists_known_ones():
    text = "\n".join(problems_of({"model": {"params": 1e9}, "cluster": {"accelerator": "H1000"}}))
    assert "cluster.accelerator" in text and "H100-SXM" in text


def test_precision_without_unit_is_rejected():
    text = "\n".join(problems_of({"model": {"params": 1e9}, "training": {"precision": "fp8"}, "cluster": {"accelerator": "A100-80GB-SXM"}}))
    assert "training.precision" in text and "fp8" in text


def test_shape_and_params_disagreeing_is_rejected():
    data = json.loads(json.dumps(GPT3))
    data["model"]["params"] = 7e9
    assert any("model.params" in p and "25%" in p for p in problems_of(data))


def test_missing_shape_and_params():
    assert any("model.params" in p for p in problems_of({"model": {"vocab": 1000}}))
    assert any("missing model.heads" in p for p in problems_of({"model": {"layers": 2, "hidden": 64}}))


def test_replace_revalidates():
    s = Scenario.from_dict(GPT3)
    assert s.replace(**{"cluster.gpus": 2048}).dp == 32
    with pytest.raises(ScenarioError):
        s.replace(**{"cluster.tp": 5})


def test_not_json_and_not_object():
    with pytest.raises(ScenarioError, match="not valid JSON"):
        Scenario.from_json("{oops")
    assert "expected a JSON object" in problems_of([1, 2])[0]


NUMERIC_FIELDS = [
    ("model", "params"), ("model", "vocab"), ("model", "seq_len"), ("training", "tokens"),
    ("training", "global_batch_seqs"), ("training", "zero_stage"), ("cluster", "gpus"), ("cluster", "tp"),
    ("cluster", "dp_overlap"), ("finance", "gpu_hour_usd"), ("finance", "pue"),
]
BAD_VALUES = st.one_of(
    st.just(-1), st.just(-0.5), st.just(float("nan")), st.just(float("inf")), st.just("many"),
    st.just(True), st.just([1]), st.just({}), st.integers(max_value=-1), st.floats(min_value=1e17, max_value=1e300),
)


@settings(max_examples=150, deadline=None)
@given(field=st.sampled_from(NUMERIC_FIELDS), value=BAD_VALUES)
def test_every_invalid_value_is_rejected_with_its_field_named(field, value):
    section, key = field
    data = {"model": {"params": 1e9}, section: {key: value}} if section != "model" else {"model": {"params": 1e9, key: value}}
    if section == "model" and key == "params":
        data = {"model": {"params": value}}
    try:
        Scenario.from_dict(data)
    except ScenarioError as exc:
        assert any(f"{section}.{key}" in p for p in exc.problems), exc.problems
    else:
        # only legal values get through; e.g. zero_stage -1 never does
        raise AssertionError(f"{section}.{key} = {value!r} was accepted")


def test_scenario_reference_doc_is_current():
    from pathlib import Path

    from simulator.scenario_doc import scenario_reference

    doc = Path(__file__).parent.parent / "docs" / "scenario.md"
    assert doc.read_text(encoding="utf-8") == scenario_reference(), "run: python -m simulator.scenario_doc > docs/scenario.md"


def test_section_classes_are_named_module_attributes_and_the_map_is_read_only():
    import pickle

    import simulator.scenario as sc
    from simulator.inputs import SECTIONS

    assert tuple(sc.SECTION_TYPES) == SECTIONS
    for section, cls in sc.SECTION_TYPES.items():
        assert getattr(sc, cls.__name__) is cls and cls.__name__ == f"{section.title()}Spec"
    with pytest.raises(TypeError):
        sc.SECTION_TYPES["model"] = dict  # type: ignore[index]
    s = Scenario.from_dict({"model": {"params": 1e9}})
    assert pickle.loads(pickle.dumps(s)) == s
