"""A family is its module plus one registration line, from declaration to page and PDF: a small family declared
here only (its input, figure, field group and section), registered by the one line simulator/families/__init__.py
would have, shows its widget on the Deploy page (AppTest), moves its figure there, and prints its section in the
Deploy PDF (read back), with no other file changed.

The registration must come before the simulator builds its tables from the families (simulator.inputs,
simulator.scenario), so it runs in a fresh interpreter."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = textwrap.dedent('''
    import io, json, sys
    sys.path.insert(0, sys.argv[1])

    import simulator.families as families
    from simulator.registry import Family, FieldGroup, FigureSpec, Input, Section

    TOY = Family(
        "toy",
        inputs=(Input("toy.widgets_per_gpu", "float", "Widgets per serving GPU", "How many widgets each serving GPU "
                      "holds (a family declared in a test).", unit="widgets", low=0.0, high=1e6, default=3.0,
                      link="twg", column="toy_widgets_per_gpu", step=1.0),),
        figures=(FigureSpec("toy.widgets", "Widgets in the fleet", "widgets",
                            "widgets per serving GPU × serving GPUs (a test family)"),),
        run=lambda cols: {"toy.widgets": cols["toy_widgets_per_gpu"] * cols["serving.gpus"]},
        needs=("serving",),
        fields=(FieldGroup("deploy", "Toy widgets", ("toy.widgets_per_gpu",)),),
        sections=(Section(("deploy",), "Toy widgets in the fleet", ("toy.widgets",),
                          text="Every serving GPU holds its widgets."),),
    )
    families.FAMILIES = (*families.FAMILIES, TOY)  # the one registration line

    import pypdf
    from streamlit.testing.v1 import AppTest

    from simulator import deployment as curves
    from report.deploy_pdf import deploy_pdf
    from simulator.evaluator import evaluate
    from simulator.scenario import Scenario

    out = {}
    at = AppTest.from_file(sys.argv[1] + "/app.py", default_timeout=120)
    at.switch_page("app_pages/deploy.py").run()
    out["exceptions"] = [e.value for e in at.exception]
    box = at.number_input(key="deploy.toy.widgets_per_gpu")
    out["label"], out["value"] = box.label, box.value
    box.set_value(5.0).run()
    out["expanders"] = [e.label for e in at.expander]
    out["subheaders"] = [h.value for h in at.subheader]
    gpus = next(m.value for m in at.metric if m.label == "Serving GPUs")
    out["gpus"] = int(gpus.split()[0].replace(",", ""))
    frames = [df.value for df in at.dataframe]
    toy = [f for f in frames if "Widgets in the fleet" in set(f.get("Figure", []))]
    out["table"] = toy[0].to_dict("records") if toy else None

    scenario = Scenario.from_dict({"model": {"preset": "llama-3-70b"}, "toy": {"widgets_per_gpu": 5}})
    plan = evaluate(scenario)
    out["plan_widgets"] = plan.value("toy.widgets")
    out["plan_gpus"] = plan.value("serving.gpus")
    pdf = deploy_pdf(curves.deployment(scenario, plan), "H100")
    out["pdf"] = " ".join(" ".join(p.extract_text().split()) for p in pypdf.PdfReader(io.BytesIO(pdf)).pages)
    print("RESULT " + json.dumps(out, default=str))
''')


def run_toy() -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(ROOT)], capture_output=True, text=True, timeout=600,
                          cwd=ROOT, env=env)
    line = next((x for x in done.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line is not None, done.stdout[-2000:] + done.stderr[-4000:]
    return json.loads(line.removeprefix("RESULT "))


def test_a_family_registered_in_one_line_reaches_the_page_and_the_pdf():
    out = run_toy()
    assert out["exceptions"] == []
    # the widget, generated from the declaration, under More settings with its group's title
    assert out["label"].startswith("Widgets per serving GPU") and out["value"] == 3.0
    assert any(label.startswith("More settings:") and "toy widgets" in label for label in out["expanders"])
    # its section on the page, and the figure follows the widget: 5 widgets × the serving GPUs
    assert "Toy widgets in the fleet" in out["subheaders"]
    assert out["table"] is not None and out["table"][0]["Value"] == f"{5 * out['gpus']:,} widgets"
    # the simulator ran it: evaluate gives the figure
    assert out["plan_widgets"] == 5 * out["plan_gpus"]
    # the PDF: its section, its figure and its input in the inputs table
    text = out["pdf"]
    assert "Toy widgets in the fleet" in text and "Every serving GPU holds its widgets." in text
    assert "Widgets in the fleet" in text and "toy.widgets_per_gpu" in text
