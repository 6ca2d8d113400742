"""The Train page through Streamlit's AppTest: renders, reacts, warns, explains errors, reads links."""

import dataclasses
import json
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from app_pages._devices import UPLOADED
from report import formatting as fmt
from simulator.catalog import load_catalog

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TIMEOUT_S = 60  # first run imports the simulator; a 2-core machine shared with others can be slow
LABELS = ("Time (days)", "Compute cost", "GPU-hours", "Energy (MWh)", "Goodput", "MFU", "Memory (GB)",
          "Predicted loss")
RAW_FLOAT = re.compile(r"\d\.\d{4,}")  # 1285512.0048, 0.5465: what a table must never show


pytestmark = pytest.mark.usefixtures("fresh_caches")  # tests/conftest.py


def run_app(query: dict[str, str] | None = None, devices: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S)
    for key, value in (query or {}).items():
        at.query_params[key] = value
    if devices:
        at.session_state[UPLOADED] = devices
    if not query:  # the root forwards a share link (parameters) to /train, and a bare visit to Decide
        at.switch_page("app_pages/train.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def rerun(what) -> AppTest:
    """Run the app (or, for a changed widget, the app it belongs to) and check nothing raised."""
    at = what.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metric(at: AppTest, label: str):
    return next(m for m in at.metric if m.label == label)


def sentence(at: AppTest) -> str:
    return next(m.value for m in at.markdown if m.value.startswith("#### Training"))


def captions(at: AppTest) -> str:
    return "\n".join(c.value.replace("\\$", "$") for c in at.caption)


def table(at: AppTest, column: str):
    return next(d.value for d in at.dataframe if column in d.value.columns)


def rig(peak_factor: float = 0.5, price: float = 1.0):
    """A calibrated device uploaded in this session only (an H100 measured at `peak_factor` of its datasheet)."""
    h100 = load_catalog()["H100-SXM"]
    return dataclasses.replace(h100, id="profile:test-rig", display_name="Test Rig 80GB", gpu_hour_usd=price,
                               peak_tflops={k: v * peak_factor for k, v in h100.peak_tflops.items()})


def test_defaults_render_answer_metrics_and_charts():
    at = run_app()
    assert "on 1,024 H100" in sentence(at)
    assert [m.label for m in at.metric] == list(LABELS)  # two rows of four
    assert metric(at, "Compute cost").value.startswith("$")
    assert float(metric(at, "Time (days)").value) > 1
    assert metric(at, "Memory (GB)").value.endswith(" / 80")
    assert not at.error
    charts = at.get("vega_lite_chart")
    assert len(charts) == 4  # step breakdown, memory, days and cost against GPU count
    specs = [json.loads(c.proto.spec) for c in charts]
    assert any("shorter is better" in json.dumps(s) for s in specs)
    assert dict(at.query_params) == {}  # defaults make an empty link


def test_goodput_is_shown_with_the_ideal_time_and_ranges_as_numbers():
    at = run_app()
    text = captions(at)
    days = metric(at, "Time (days)").value
    said = re.search(rf"Ideal ([\d.]+) days if nothing fails; expected {days} days with checkpoints .*failures and "
                     r"restarts .*evaluation .*start-up .*\(goodput \d+%\)", text)
    assert said and float(said.group(1)) <= float(days)
    assert re.search(r"P10–P90 .*time \d+–\d+ days · cost \$[\d.]+[kM]–\$[\d.]+[kM] · GPU-hours [\d.]+[kM]?–[\d.]+[kM]? GPU-h", text)
    assert "P10–P90" in metric(at, "Time (days)").help and "Ideal" in metric(at, "Time (days)").help
    assert metric(at, "Goodput").value.endswith("%")
    goodput = next(e for e in at.expander if e.label == "Goodput")
    assert goodput.toggle(key="goodput.enabled").value is True
    assert goodput.number_input(key="goodput.failures_per_1k_gpu_days").value == pytest.approx(0.474)
    at.toggle(key="goodput.enabled").set_value(False)
    rerun(at)
    assert metric(at, "Goodput").value == "off"
    assert "Goodput overheads are off" in captions(at)
    assert at.number_input(key="goodput.restart_min").disabled
    assert metric(at, "Time (days)").value == said.group(1)  # ideal: nothing fails
    assert at.query_params["gon"] == "0"


def test_more_gpus_finish_sooner_and_the_link_follows():
    at = run_app()
    before = metric(at, "Time (days)").value
    at.number_input(key="cluster.gpus").set_value(2048).run()
    assert not at.exception
    assert metric(at, "Time (days)").value != before
    assert "on 2,048 H100" in sentence(at)
    assert at.query_params["gpus"] == "2048"


def test_more_tokens_cost_more():
    at = run_app()
    before = metric(at, "Compute cost").value
    at.number_input(key="training.tokens_B").set_value(2800).run()
    assert metric(at, "Compute cost").value != before
    assert "on 2.8T tokens" in sentence(at)


def test_pinned_baseline_gives_deltas_in_labels_and_travels_in_the_link():
    at = run_app()
    assert not metric(at, "Compute cost").delta
    at.button(key="train.pin").click().run()
    at.number_input(key="cluster.gpus").set_value(512).run()
    wall = metric(at, "Time (days)")
    assert wall.delta and wall.delta.startswith("+")  # half the GPUs: longer
    assert "Changed from the baseline: GPUs 1,024 → 512." in captions(at)
    assert "cluster.gpus" not in captions(at)  # labels, not keys
    assert dict(at.query_params) == {"gpus": "512", "b": "1"}  # b=1: the baseline is the defaults
    shared = run_app(dict(at.query_params))  # the link opens with the same baseline pinned
    assert metric(shared, "Time (days)").delta == wall.delta
    other = run_app({"gpus": "512", "b.gpus": "2048"})
    assert "Changed from the baseline: GPUs 2,048 → 512." in captions(other)
    assert metric(other, "Time (days)").delta.startswith("+")


def test_changes_that_followed_are_told_apart_from_the_users():
    at = run_app()
    at.button(key="train.pin").click().run()
    at.selectbox(key="cluster.accelerator").set_value("A100-80GB-SXM").run()
    line = next(c for c in captions(at).splitlines() if c.startswith("Changed from the baseline"))
    made, _, followed = line.partition(" Followed: ")
    assert "accelerator H100 SXM5 80GB → A100 SXM4 80GB" in made and "price" not in made
    assert followed.startswith("price per GPU-hour $3.49 → $1.59 (the catalog's dated price")


def test_plan_that_does_not_fit_warns_with_a_way_out():
    at = run_app()
    at.number_input(key="cluster.tp").set_value(1)
    at.number_input(key="cluster.pp").set_value(1)
    at.number_input(key="cluster.gpus").set_value(64).run()
    assert not at.exception
    texts = " ".join(w.value for w in at.warning)
    assert "Does not fit" in texts and "but an H100 SXM5 80GB has 80 GB" in texts  # the right article
    assert "would fit" in texts and "ZeRO stage 3" in texts
    assert "Does not fit: needs" in sentence(at)
    assert len(at.metric) == len(LABELS)  # the figures stay on screen
    apply = next(b for b in at.button if b.label.startswith("Apply:"))
    apply.click().run()  # one click moves the inputs to the suggested plan, and it fits
    assert not at.exception
    assert "Does not fit" not in " ".join(w.value for w in at.warning)
    assert "Does not fit" not in sentence(at)


def _warnings_page():
    """Render warnings whose wording is nothing like the simulator's: the page must go by their codes."""
    from types import SimpleNamespace

    from app_pages import _train_view as view
    from simulator.plan import PlanWarning, Suggestion

    plan = SimpleNamespace(
        warnings=(PlanWarning("memory", "Reworded: too big.", "training.memory_per_gpu_gb"),
                  PlanWarning("brand_new_code", "Something else entirely.")),
        suggestions=(Suggestion("ZeRO stage 3", {"training.zero_stage": 3}, 40.0),),
        hardware=SimpleNamespace(hbm_GB=80.0), hardware_label="NVIDIA A100 SXM4 80GB",
        value=lambda key: 96.0)
    view.problems(plan, on_apply=lambda change: None)


def test_warnings_are_recognised_by_code_not_wording():
    at = AppTest.from_function(_warnings_page, default_timeout=TIMEOUT_S)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    memory, other = at.warning
    # the rule's own sentence, as the rule built it (simulator.words.does_not_fit), then what goes with its code
    assert memory.value.startswith("Reworded: too big. These nearby plans would fit")
    assert memory.icon == ":material/memory:"
    assert [b.label for b in at.button] == ["Apply: ZeRO stage 3"]
    assert other.value == "Something else entirely."


def test_invalid_combination_explains_and_keeps_the_last_valid_plan_marked_stale():
    at = run_app()
    valid_days = metric(at, "Time (days)").value
    at.number_input(key="cluster.tp").set_value(3).run()
    assert not at.exception
    assert "Tensor parallel = 3 GPUs: the tensor-parallel degree must divide Attention heads (64)" in at.error[0].value
    assert "cluster.tp" not in at.error[0].value
    assert at.number_input(key="cluster.tp").value == 3
    assert "can't be simulated" in sentence(at)
    stale = next(w.value for w in at.warning if "last valid plan" in w.value)
    assert stale.startswith("Showing the last valid plan: Training a 65B model") and "1,024 H100" in stale
    assert metric(at, "Time (days)").value == valid_days  # figures, charts and exports stay
    assert len(at.metric) == len(LABELS) and len(at.get("vega_lite_chart")) == 4
    assert [b.label for b in at.get("download_button")] == ["Scenario JSON (last valid plan)",
                                                             "Plan JSON (last valid plan)",
                                                             "PDF report (last valid plan)",
                                                             "GPU-count sweep CSV (last valid plan)"]


def test_a_gpu_count_the_layout_does_not_allow_offers_the_nearest_that_it_does():
    at = run_app()
    at.number_input(key="cluster.gpus").set_value(1000).run()
    assert "use a multiple of 32 GPUs" in at.error[0].value
    fixes = [b for b in at.button if b.label.startswith("Use ")]
    assert [b.label for b in fixes] == ["Use 992 GPUs", "Use 1,024 GPUs"]
    fixes[1].click().run()
    assert not at.error and at.number_input(key="cluster.gpus").value == 1024


def test_gpu_steps_stay_on_counts_the_layout_allows():
    at = run_app()
    at.number_input(key="cluster.gpus").set_value(4096).run()
    rerun(at.number_input(key="cluster.gpus").increment())  # the "+" button: one step of tp×pp = 32
    assert at.number_input(key="cluster.gpus").value == 4128
    assert not at.error and "on 4,128 H100" in sentence(at) and len(at.metric) == len(LABELS)
    at.number_input(key="cluster.gpus").set_value(1024)
    at.number_input(key="cluster.pp").set_value(3).run()  # 1,024 is no multiple of 8×3 = 24
    assert at.error
    rerun(at.number_input(key="cluster.gpus").increment())
    assert at.number_input(key="cluster.gpus").value == 1032 and not at.error
    rerun(at.number_input(key="cluster.gpus").decrement())
    assert at.number_input(key="cluster.gpus").value == 1008 and not at.error


def test_a_step_up_stops_at_the_most_gpus_the_batch_can_feed():
    at = run_app({"gb": "64", "gpus": "2048"})  # 64 sequences feed 64 data-parallel ranks of 32 GPUs
    rerun(at.number_input(key="cluster.gpus").increment())
    assert at.number_input(key="cluster.gpus").value == 2048 and not at.error
    assert "2,048 GPUs is the most a global batch of 64 sequences can feed" in captions(at)


def test_values_out_of_range_are_said_at_the_field():
    at = run_app()
    at.number_input(key="cluster.gpus").set_value(20_000_000).run()
    assert "Allowed: 1 to 10,000,000 GPUs; the plan uses 10,000,000, not 20,000,000." in captions(at)
    assert at.query_params["gpus"] == "10000000"  # the value used, not the value typed
    at.number_input(key="cluster.gpus").set_value(1024).run()
    assert "Allowed:" not in captions(at)


def test_parameters_at_and_above_their_maximum_do_not_crash():
    at = run_app()
    at.selectbox(key="model.preset").set_value("custom-size").run()
    rerun(at.number_input(key="model.params_B").set_value(1e6))  # the registry's bound: 1e15 parameters
    assert "Training a 1,000T model" in sentence(at)
    assert "Allowed:" not in captions(at)
    rerun(at.number_input(key="model.params_B").set_value(2e6))
    assert "the plan uses 1,000,000, not 2,000,000" in captions(at)
    assert "Training a 1,000T model" in sentence(at)


def test_choosing_a_preset_after_an_invalid_plan_shows_that_model_everywhere():
    at = run_app()
    at.number_input(key="cluster.gpus").set_value(1000).run()  # invalid: no multiple of tp×pp
    at.selectbox(key="model.preset").set_value("gpt3-175b").run()
    assert "Training a 175B model on 300B tokens" in sentence(at)
    assert at.selectbox(key="model.preset").value == "gpt3-175b"
    assert "96 layers × 12,288 hidden" in captions(at) and "80 layers" not in captions(at)
    assert "GPT-3 175B" in at.selectbox(key="model.preset").options  # the label names the count
    at.button(key="train.edit_shape").click().run()
    assert at.number_input(key="model.layers").value == 96 and at.number_input(key="model.hidden").value == 12288
    assert "Training a 175B model" in sentence(at)
    at.number_input(key="cluster.gpus").set_value(1024).run()
    assert not at.error and "Training a 175B model on 300B tokens takes" in sentence(at)
    assert at.query_params["m"] == "gpt3-175b"  # the shape is GPT-3's exactly: still a short link


def test_provenance_says_computed_with_its_basis_and_range():
    at = run_app()
    rows = table(at, "Provenance").set_index("Figure")
    wall = rows.loc["Expected wall time"]
    assert wall["Provenance"] == "computed"
    assert wall["Basis"].startswith("computed from H100-SXM") and "datasheet" in wall["Basis"]
    assert re.fullmatch(r"\d+–\d+ days", wall["P10–P90"])
    assert "datasheet" not in set(rows["Provenance"])


def test_every_table_is_formatted_by_unit():
    at = run_app({"b.gpus": "512"})  # with a baseline: two scenarios per table
    assert len(at.dataframe) == 5  # four tables and what the ranges include
    for frame in (d.value for d in at.dataframe):
        for column in frame.columns:
            cells = frame[column].tolist()
            assert all(isinstance(c, str) for c in cells), (column, cells[:3])
            assert not any(RAW_FLOAT.search(c) for c in cells if column not in ("How", "Basis")), (column, cells[:3])
    step = table(at, "Seconds")
    assert all(re.fullmatch(r"[\d.]+ (s|ms)", c) for c in step["Seconds"])
    assert all(c.endswith("%") for c in step["Share"])


def test_parameter_server_follows_the_zero_rule():
    at = run_app()
    zero = at.selectbox(key="training.zero_stage")
    assert zero.value == "auto" and zero.options[0] == "auto (follows sync)"
    at.selectbox(key="cluster.sync").set_value("ps").run()
    assert not at.exception and not at.error
    assert "The ZeRO stage follows the sync (auto): now 0, was 1." in captions(at)
    assert "Auto (follows sync): now 0." in captions(at)
    at.selectbox(key="training.zero_stage").set_value(1).run()  # chosen, not followed: now it is an error
    assert "ZeRO stage = 1: ZeRO shards states" in at.error[0].value and "ZeRO stage = 0 with" in at.error[0].value


def test_one_gpu_reads_with_the_right_article():
    at = run_app({"hw": "A100-80GB-SXM", "gpus": "1", "tp": "1", "pp": "1", "m": "llama2-7b", "tok": "1e9"})
    assert "on an A100 SXM4 80GB and costs" in sentence(at)
    assert [fmt.article(w) for w in ("A100", "H100", "B200", "MI300X", "8B", "11B", "175B", "L4")] == [
        "an", "an", "a", "an", "an", "an", "a", "an"]


def test_the_sessions_uploaded_device_is_planned_on():
    fast, slow = run_app(devices={"profile:test-rig": rig(1.0)}), run_app(devices={"profile:test-rig": rig(0.25)})
    for at in (fast, slow):
        at.selectbox(key="cluster.accelerator").set_value("profile:test-rig").run()
        assert not at.exception and not at.error
        assert "on 1,024 Test Rig 80GB" in sentence(at)
        assert len(at.get("vega_lite_chart")) == 4  # the sweep runs on it too
    # the same id and inputs in two sessions with different devices: the cache keeps them apart
    assert float(metric(slow, "Time (days)").value) > 2 * float(metric(fast, "Time (days)").value)


def test_link_sets_the_scenario():
    at = run_app({"m": "llama2-7b", "gpus": "256", "hw": "A100-80GB-SXM", "tok": "1e12"})
    assert at.selectbox(key="model.preset").value == "llama2-7b"
    assert at.number_input(key="cluster.gpus").value == 256
    assert at.selectbox(key="cluster.accelerator").value == "A100-80GB-SXM"
    assert "on 1T tokens" in sentence(at) and "256 A100" in sentence(at)


def test_bad_link_values_are_explained_and_the_rest_still_applies():
    at = run_app({"gpus": "lots", "tok": "2e12"})
    assert any("gpus=lots" in i.value for i in at.info)
    assert at.number_input(key="cluster.gpus").value == 1024
    assert "on 2T tokens" in sentence(at)


def test_another_pages_link_parameters_are_named_and_the_rest_applies():
    at = run_app({"budget": "5e6", "name": "Chat", "gpus": "512"})  # a Decide link's parameters, opened on Train
    said = at.info[0].value.replace("\\", "")
    assert "Budget (budget=5e6): not an input of this page; ignored." in said
    assert "Scenario name (name=Chat): not on this page; ignored." in said
    assert "on 512 H100" in sentence(at)


def test_custom_size_derives_a_shape():
    at = run_app()
    at.selectbox(key="model.preset").set_value("custom-size").run()
    at.number_input(key="model.params_B").set_value(13.0).run()
    assert not at.exception
    assert "Training a 13B model" in sentence(at)
    assert at.query_params["m"] == "" and at.query_params["n"] == "1.3e10"


def test_import_of_a_bad_file_says_why():
    at = run_app()
    at.file_uploader(key="train.import").set_value(("broken.json", b"{not json", "application/json")).run()
    assert not at.exception
    assert any("broken.json: not valid JSON" in e.value for e in at.error)
    assert len(at.metric) == len(LABELS)  # the current plan is untouched


@pytest.mark.parametrize(("name", "body", "says"), [
    ("deep.json", b"[" * 100_000 + b"]" * 100_000, "nesting depth"),
    ("big.json", b'{"model": {"params": 1' + b"0" * 400 + b'}}', "40-character cap"),
    ("huge.json", b'{"a": "' + b"x" * (2 * 2**20) + b'"}', "over the"),
    ("latin1.json", '{"model": {"params": 1e9, "mlp": "gélu"}}'.encode("latin-1"), "not a UTF-8 text file"),
    ("dup.json", b'{"cluster": {"gpus": 8, "gpus": 16}}', "duplicate key 'gpus'"),
])
def test_import_of_a_hostile_file_is_a_message_not_a_traceback(name, body, says):
    at = run_app()
    at.file_uploader(key="train.import").set_value((name, body, "application/json")).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(says in e.value and name in e.value for e in at.error), [e.value for e in at.error]
    assert len(at.metric) == len(LABELS)  # the current plan is untouched


def test_import_of_a_scenario_sets_the_inputs():
    at = run_app()
    scenario = {"model": {"params": 7e9}, "cluster": {"gpus": 64, "tp": 2}, "training": {"tokens": 1e11}}
    at.file_uploader(key="train.import").set_value(("s.json", json.dumps(scenario).encode(), "application/json")).run()
    assert not at.exception
    assert at.number_input(key="cluster.gpus").value == 64
    assert at.selectbox(key="model.preset").value == "custom-size"  # the file gave a size, not a shape
    assert "6.6B model on 100B tokens" in sentence(at)  # the shape derived from 7e9 counts 6.6B
    assert "on 64 H100" in sentence(at)


def test_editing_a_preset_shape_keeps_the_plan_and_a_short_link():
    at = run_app({"m": "llama2-70b", "tok": "2e12"})
    before = sentence(at)
    at.button(key="train.edit_shape").click().run()
    assert at.selectbox(key="model.preset").value == "custom-shape"
    assert sentence(at) == before
    at.number_input(key="model.seq_len").set_value(8192).run()
    assert not at.exception
    assert at.query_params["m"] == "llama2-70b" and at.query_params["seq"] == "8192"


def test_deep_link_to_the_page():
    at = run_app({"gpus": "512"})
    at.switch_page("app_pages/train.py")  # the /train address runs the page itself, link and all
    rerun(at)
    assert "on 512 H100" in sentence(at)


def test_layout_knobs_left_empty_say_what_the_planner_chose():
    from app_pages._train_fields import DEFAULTS
    from simulator.scenario import Scenario

    planned = Scenario.from_dict({"model": {"preset": "chinchilla-70b"}, **{k: v for k, v in DEFAULTS.items()
                                                                            if k != "model"}})
    at = run_app()
    for key in ("training.interleave", "training.micro_batch_seqs"):
        chosen = planned.value(key)
        box = at.number_input(key=key)
        assert box.value is None and box.proto.placeholder.startswith(f"auto: {chosen}")
        assert f"Auto: {chosen}, chosen by the planner: the fastest that fits." in captions(at)
    assert planned.training.interleave > 1  # Chinchilla's 80 layers on 4 stages: interleaving pays
    mfu = float(metric(at, "MFU").value.rstrip("%"))
    rerun(at.number_input(key="training.interleave").set_value(1))  # a given value is kept, even if slower
    assert at.number_input(key="training.interleave").value == 1
    assert "Auto: 1, chosen by the planner" not in captions(at)
    assert float(metric(at, "MFU").value.rstrip("%")) < mfu


def test_the_resolved_model_cache_is_keyed_by_value_bounded_and_frozen():
    from app_pages import _train_inputs as inputs

    inputs._resolved.cache_clear()
    first = inputs.resolve_model({"preset": "llama2-7b", "layers": None})
    again = inputs.resolve_model({"layers": None, "preset": "llama2-7b"})  # the same model, keys in another order
    assert first == again and first is not again  # each caller gets its own dict
    assert inputs._resolved.cache_info().hits == 1 and inputs._resolved.cache_info().currsize == 1
    assert inputs._resolved.cache_info().maxsize == inputs.RESOLVED_MODELS_KEPT
    first["layers"] = -1  # changing a caller's dict changes no cached value
    assert inputs.resolve_model({"preset": "llama2-7b", "layers": None}) == again
    spec = inputs._resolved(json.dumps({"preset": "llama2-7b"}, sort_keys=True))
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.layers = 1


def test_a_mixture_of_experts_link_plans_with_its_experts_on_the_page():
    """A link to an MoE preset with expert parallelism: the sentence names total and active parameters, the key
    figures show both and the all-to-all share, the step chart has its all-to-all part, and the link keeps ep."""
    at = run_app({"m": "qwen3-30b-a3b", "gpus": "64", "tp": "1", "pp": "1", "ep": "8", "gb": "512", "mb": "2"})
    assert "31B mixture-of-experts model (3.4B active)" in sentence(at)
    figures = table(at, "Provenance").set_index("Figure")
    assert {"Parameters (total)", "Parameters per token (active)", "All-to-all share of the step"} <= set(figures.index)
    assert at.number_input(key="cluster.ep").value == 8
    assert at.query_params["ep"] == "8"
