"""Hostile input ends with a message, never a traceback, in bounded time.

Every untrusted JSON text (scenario files and strings, --grid-json, profiles, uploads) goes through the one
bounded reader, simulator.safe_json. Generated hostile scenario texts, grid texts and CLI argument lists run
through `simulator.cli.main` in-process (a handful through a real subprocess); each must end with exit code 2
and `error:` lines on standard error, or exit code 0 and a strict-JSON plan with finite figures, within a few
seconds. The named tests below pin one hostile input each.

Hypothesis runs derandomized (fixed seed) with no example database. `make fuzz` runs the same properties with
MODELFOLIO_FUZZ_EXAMPLES examples each.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator import Scenario, ScenarioError, evaluate, sweep
from simulator.cli import EXIT_BAD_INPUT, MAX_GRID_CHARS, main
from simulator.inputs import INPUTS, coerce
from simulator.profile import ProfileError, load_profile, parse_json
from simulator.resolve import parse_sections
from simulator.safe_json import loads, read_upload
from simulator.safe_json_errors import JSONInputError, shorten
from simulator.safe_json_scan import max_depth
from simulator.sweeps import MAX_FRAME_BYTES

ROOT = Path(__file__).resolve().parents[1]
FUZZ = int(os.environ.get("MODELFOLIO_FUZZ_EXAMPLES", "0") or 0)
SECONDS = 5.0  # one in-process CLI run, hostile or not, ends within this
MAX_ERR_CHARS = 20_000  # standard error never carries a huge value back
KEYS = sorted(INPUTS)
BASE = {"model": {"params": 1.3e9}}
SHAPED = {
    "model": {"layers": 32, "hidden": 4096, "heads": 32, "mlp": "swiglu", "vocab": 32000, "seq_len": 4096},
    "training": {"tokens": 2e12, "global_batch_seqs": 1024, "micro_batch_seqs": 1, "zero_stage": 1},
    "cluster": {"accelerator": "H100-SXM", "gpus": 512, "gpus_per_node": 8, "tp": 2, "pp": 1, "sync": "ring"},
}
BASES = (BASE, SHAPED, {"model": {"preset": "llama2-7b"}})
HOLE = "@@HOSTILE@@"


def hostile(examples: int) -> settings:
    """Fixed-seed settings: `examples` cases (MODELFOLIO_FUZZ_EXAMPLES under `make fuzz`), no database."""
    return settings(max_examples=FUZZ or examples, derandomize=True, database=None, deadline=None,
                    print_blob=False, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                             HealthCheck.filter_too_much,
                                                             HealthCheck.large_base_example])


# ---------------------------------------------------------------- running the CLI


@dataclass(frozen=True)
class Run:
    argv: Sequence[str]
    rc: int
    out: str
    err: str
    seconds: float


def cli(argv: Sequence[str], stdin: bytes = b"", cwd: Path | None = None) -> Run:
    """`main(argv)` in-process with captured standard streams (stdin from bytes), in `cwd` if given."""
    out, err = io.StringIO(), io.StringIO()
    old_in = sys.stdin
    sys.stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    start = time.perf_counter()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
                contextlib.chdir(cwd) if cwd else contextlib.nullcontext():
            rc = main(list(argv))
    finally:
        sys.stdin = old_in
    return Run(argv, rc, out.getvalue(), err.getvalue(), time.perf_counter() - start)


def _peak_rss_bytes() -> int:
    # Linux reports ru_maxrss in KiB: the process's high-water mark, so one runaway case shows for good
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


RSS_AT_IMPORT = _peak_rss_bytes()
MAX_EXTRA_BYTES = 1024**3  # no hostile case may take the process 1 GiB past where these tests started


def _reject_constant(name: str) -> Any:
    raise AssertionError(f"standard output carries {name}: not strict JSON")


def settled(run: Run) -> Run:
    """Exit 2 with `error:` lines, or exit 0 (a plan: strict JSON, finite figures, at least one step long);
    never a traceback, never a huge echo, within SECONDS."""
    shown = [shorten(a, 80) for a in run.argv]
    assert run.rc in (0, EXIT_BAD_INPUT), (run.rc, shown, run.err[-2000:])
    assert "Traceback" not in run.err, (shown, run.err[-2000:])
    assert run.seconds < SECONDS, (run.seconds, shown)
    assert len(run.err) < MAX_ERR_CHARS, (len(run.err), shown, run.err[:500])
    assert _peak_rss_bytes() - RSS_AT_IMPORT < MAX_EXTRA_BYTES, (_peak_rss_bytes(), shown)
    if run.rc == EXIT_BAD_INPUT:
        assert "error:" in run.err, (shown, run.err[:500])
    elif run.argv[:1] == ["evaluate"] and not run.out.startswith("usage:"):
        check_plan(json.loads(run.out, parse_constant=_reject_constant))
    return run


def check_plan(plan: dict[str, Any]) -> None:
    figures = {**plan["training"], **plan["quality"]}
    for key, value in figures.items():
        if key != "law":
            assert isinstance(value, bool | int | float) and math.isfinite(value), (key, value)
    t = plan["training"]
    assert t["iterations"] >= 1 - 1e-9, t["iterations"]
    assert t["ideal_wall_days"] * 86_400 >= t["step_time_s"] * (1 - 1e-9), (t["ideal_wall_days"], t["step_time_s"])
    assert t["wall_days"] >= t["ideal_wall_days"] * (1 - 1e-9)


def refused(run: Run, *needles: str) -> str:
    settled(run)
    assert run.rc == EXIT_BAD_INPUT, (run.out[:300], run.err[:300])
    for needle in needles:
        assert needle in run.err, (needle, run.err[:1000])
    return run.err


@pytest.fixture
def base_file(tmp_path: Path) -> Path:
    path = tmp_path / "base.json"
    path.write_text(json.dumps(BASE))
    return path


def splice(doc: dict[str, Any], key: str, literal: bytes) -> bytes:
    """JSON text of `doc` with `key` (dotted) set to the raw JSON `literal` (anything: not even JSON)."""
    section, _, name = key.partition(".")
    merged = {s: dict(v) for s, v in doc.items()}
    merged.setdefault(section, {})[name] = HOLE
    return json.dumps(merged).encode().replace(f'"{HOLE}"'.encode(), literal)


# ---------------------------------------------------------------- hostile literals


def _digits(n: int) -> bytes:
    return b"1" + b"0" * (n - 1)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)

literals = st.one_of(
    st.sampled_from([310, 400, 4300, 4301, 5000, 100_000]).map(_digits),  # long integers
    st.integers(1, 6000).map(lambda n: b"-" + b"9" * n),
    st.integers(300, 10**7).map(lambda e: f"1e{e}".encode()),  # float overflow
    st.integers(300, 10**7).map(lambda e: f"-1.5e-{e}".encode()),  # underflow: 0.0
    st.integers(1, 5000).map(lambda n: b"0." + b"0" * n + b"1"),
    st.sampled_from([b"NaN", b"Infinity", b"-Infinity", b"nan", b"inf", b"1e999", b"-1e999", b"null", b"true",
                     b"false", b"-0", b"0", b"-1", b"1e-400", b"01", b"1.", b".5", b"+1", b"0x10", b"1_000"]),
    st.integers(1, 200_000).map(lambda n: b"[" * n + b"]" * n),  # deep nesting
    st.integers(1, 200_000).map(lambda n: b'{"a":' * n + b"1" + b"}" * n),
    st.integers(1, 200_000).map(lambda n: b"[" * n),
    st.tuples(st.sampled_from([b"x", b'\\"', b"\\\\", b"\\u0000", b"\\ud800", b"\xc3\xa9", b"[", b"{", b"\\n"]),
              st.integers(0, 1_200_000)).map(lambda t: b'"' + t[0] * (t[1] // len(t[0])) + b'"'),  # long strings
    st.sampled_from([b'"\xff"', b"\xff", b'"\xc3\x28"', b'"\xed\xa0\x80"', b'"\x00"', b'"\\', b'"abc', b"",
                     b'"\\x41"', b"\x00", b"\xef\xbb\xbf1"]),  # non-UTF-8, control characters, cut strings
    json_values.map(lambda v: json.dumps(v).encode()),
)


def edge_values(key: str) -> st.SearchStrategy[Any]:
    inp = INPUTS[key]
    if inp.kind == "choice":
        return st.sampled_from(inp.choices)
    if inp.kind == "bool":
        return st.booleans()
    if inp.kind == "device":
        return st.sampled_from(["H100-SXM", "A100-80GB-SXM", "cpu-reference", "TPU9"])
    values = [v for v in (inp.low, inp.high, inp.default) if v is not None and not isinstance(v, str)]
    if inp.kind == "int":
        values = [int(v) for v in values] + [int(v) + 1 for v in values]
    values += list(inp.words)  # named values of a number ("max")
    return st.sampled_from(values) if values else st.just(1)


@st.composite
def scenario_texts(draw: st.DrawFn) -> bytes:
    base = draw(st.sampled_from(BASES))
    kind = draw(st.sampled_from(["value", "value", "value", "edge", "edge", "duplicate", "section", "top",
                                 "truncate", "bytes", "keys", "bom"]))
    if kind == "edge":  # legal but extreme: each chosen input at a bound, its default or an allowed choice
        doc = {sec: dict(v) for sec, v in base.items()}
        for key in draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=3, unique=True)):
            section, _, name = key.partition(".")
            doc.setdefault(section, {})[name] = draw(edge_values(key))
        return json.dumps(doc).encode()
    if kind == "value":  # a hostile literal in a registered key (wrong types, huge numbers, ...)
        return splice(base, draw(st.sampled_from(KEYS)), draw(literals))
    if kind == "duplicate":
        key = draw(st.sampled_from(KEYS))
        section, _, name = key.partition(".")
        value = draw(st.sampled_from(["1", "2e9", '"x"', "null"]))
        pair = f'"{name}": {value}'
        return f'{{"{section}": {{{pair}, "params": 1e9, {pair}}}}}'.encode()
    if kind == "section":
        section = draw(st.sampled_from([*{k.partition(".")[0] for k in KEYS}, "", "modle", "x" * 1000]))
        return b'{"model": {"params": 1e9}, "' + section.encode() + b'": ' + draw(literals) + b"}"
    if kind == "top":
        return draw(literals)
    if kind == "truncate":
        text = json.dumps(base).encode()
        return text[: draw(st.integers(0, len(text)))]
    if kind == "bytes":
        return draw(st.binary(max_size=300))
    if kind == "bom":
        return b"\xef\xbb\xbf" + json.dumps(base).encode()
    n = draw(st.integers(1, 20_000))  # many or long unknown keys
    if draw(st.booleans()):
        return json.dumps({"model": {"params": 1e9, **{f"k{i}": i for i in range(n)}}}).encode()
    return json.dumps({"model": {"params": 1e9, "k" * (n * 50): 1}}).encode()


SWEEPABLE = [k for k in KEYS if INPUTS[k].column is not None]


@st.composite
def grid_texts(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["values", "values", "normal", "big", "deep", "duplicate", "top", "wide"]))
    if kind == "values":
        keys = draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=3, unique=True))
        parts = [b'"' + k.encode() + b'": [' + b", ".join(draw(st.lists(literals, min_size=1, max_size=3))) + b"]"
                 for k in keys]
        return b"{" + b", ".join(parts) + b"}"
    if kind == "normal":
        return json.dumps({"cluster.gpus": draw(st.lists(st.sampled_from([8, 16, 64, 512, 3, 0]), min_size=1,
                                                         max_size=4)),
                           "training.zero_stage": draw(st.lists(st.integers(-1, 4), min_size=1, max_size=3))}).encode()
    if kind == "big":  # refused by the frame-memory estimate before anything is checked or allocated
        keys = draw(st.lists(st.sampled_from(SWEEPABLE), min_size=4, max_size=8, unique=True))
        return json.dumps({k: list(range(1, draw(st.integers(200, 5000)))) for k in keys}).encode()
    if kind == "deep":
        n = draw(st.integers(65, 200_000))
        return b'{"cluster.gpus": ' + b"[" * n + b"]" * n + b"}"
    if kind == "duplicate":
        return b'{"cluster.gpus": [8], "training.zero_stage": [0], "cluster.gpus": [16]}'
    if kind == "top":
        return draw(literals)
    return json.dumps({f"k{i}": [1, 2] for i in range(draw(st.integers(1, 12_000)))}).encode()


# ---------------------------------------------------------------- properties (scaled up by `make fuzz`)


@pytest.mark.fuzz
@hostile(300)
@given(scenario_texts(), st.sampled_from(["evaluate", "sweep"]))
def test_hostile_scenario_texts_end_with_a_message(text, command):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scenario.json"
        path.write_bytes(text)
        extra = ["--grid", "cluster.gpus=8,16"] if command == "sweep" else []
        settled(cli([command, str(path), *extra]))


@pytest.mark.fuzz
@hostile(150)
@given(scenario_texts())
def test_hostile_scenario_on_standard_input(text):
    settled(cli(["evaluate", "-"], stdin=text))


@pytest.mark.fuzz
@hostile(300)
@given(scenario_texts())
def test_hostile_scenario_strings_raise_only_scenario_error(text):
    start = time.perf_counter()
    try:
        Scenario.from_json(text)
    except ScenarioError as exc:
        assert all(len(p) < 2_000 for p in exc.problems), [p[:200] for p in exc.problems]
    assert time.perf_counter() - start < SECONDS


@pytest.mark.fuzz
@hostile(250)
@given(grid_texts(), st.booleans())
def test_hostile_grid_json_ends_with_a_message(text, as_file):
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base.json"
        base.write_text(json.dumps(BASE))
        if as_file:
            (Path(tmp) / "grid.json").write_bytes(text)
            grid = str(Path(tmp) / "grid.json")
        else:  # a command line carries undecodable bytes as surrogates
            grid = text.decode("utf-8", errors="surrogateescape")
        settled(cli(["sweep", str(base), "--grid-json", grid], cwd=Path(tmp)))


ARG_TOKENS = ["evaluate", "sweep", "catalog", "--grid", "--grid-json", "--out", "--force", "--help", "-", "",
              "--", "-x", "{base}", "{base}", "{missing}", "{dir}", "{existing}", "{new}", "{nofolder}", "{grid}",
              "cluster.gpus=8,16", "cluster.gpus=", "=", "=1", "model.params=1e9", "cluster.gpus=1e999",
              "cluster.accelerator=H100-SXM,TPU9", "training.tokens=1000", "cluster.gpus=[8]", "cluster.gpus=NaN",
              "cluster.gpus=" + "9" * 5000, "cluster.gpus=" + "[" * 5000, '{"cluster.gpus": [8]}', "x" * 200_000,
              "cluster.gpus=" + ",".join(["8"] * 3000), "a\x00b", "\udcff", "{base}/x"]


@st.composite
def argument_lists(draw: st.DrawFn) -> list[str]:
    head = draw(st.sampled_from(["evaluate", "sweep", "sweep", "catalog", "--help", "bogus", ""]))
    rest = draw(st.lists(st.sampled_from(ARG_TOKENS) | st.text(max_size=12), max_size=7))
    return [head, *rest]


@pytest.mark.fuzz
@hostile(300)
@given(argument_lists(), scenario_texts())
def test_hostile_argument_lists_end_with_a_message(argv, stdin):
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "base.json").write_text(json.dumps(BASE))
        (d / "existing.csv").write_text("keep me\n")
        (d / "grid.json").write_text('{"cluster.gpus": [8, 16]}')
        (d / "dir").mkdir()
        names = {"{base}": d / "base.json", "{missing}": d / "missing.json", "{dir}": d / "dir",
                 "{existing}": d / "existing.csv", "{new}": d / "new.csv", "{nofolder}": d / "no" / "x.csv",
                 "{grid}": d / "grid.json"}
        args = list(argv)
        for placeholder, path in names.items():
            args = [a.replace(placeholder, str(path)) for a in args]
        settled(cli(args, stdin=stdin, cwd=d))
        assert (d / "base.json").read_text() == json.dumps(BASE), "an input was overwritten"
        assert (d / "grid.json").read_text() == '{"cluster.gpus": [8, 16]}', "an input was overwritten"
        if "--force" not in args:
            assert (d / "existing.csv").read_text() == "keep me\n", "overwritten without --force"


def _reference_depth(data: bytes) -> tuple[int, int | None]:
    """(max depth, position of the first backslash outside strings or None): a byte-at-a-time state machine."""
    depth = best = 0
    in_string = escaped = False
    stray = None
    for i, c in enumerate(data):
        if in_string:
            if escaped:
                escaped = False
            elif c == 0x5C:
                escaped = True
            elif c == 0x22:
                in_string = False
        elif c == 0x22:
            in_string = True
        elif c == 0x5C and stray is None:
            stray = i
        elif c in b"[{":
            depth += 1
            best = max(best, depth)
        elif c in b"]}":
            depth -= 1
    return best, stray


@pytest.mark.fuzz
@hostile(500)
@given(st.lists(st.sampled_from([b"[", b"]", b"{", b"}", b'"', b"\\", b"\\\\", b'\\"', b",", b"a", b" "]),
                max_size=200).map(b"".join))
def test_prescan_depth_matches_a_reference_parser(data):
    depth, stray = _reference_depth(data)
    if stray is None:
        assert max_depth(data) == depth
    else:  # a backslash outside strings is invalid JSON: the parser stops there, having seen only the prefix
        assert max_depth(data) >= _reference_depth(data[:stray])[0]


@pytest.mark.fuzz
@hostile(300)
@given(json_values)
def test_bounded_reader_agrees_with_json_on_valid_input(value):
    text = json.dumps(value)
    assert loads(text) == json.loads(text) == value
    assert loads(text.encode()) == value


# ---------------------------------------------------------------- named hostile inputs


def test_310_digit_integer_is_a_message(base_file):
    path = base_file.with_name("s.json")
    path.write_bytes(splice(BASE, "model.params", _digits(310)))
    err = refused(cli(["evaluate", str(path)]), "s.json: model.params: number", "310 characters", "40-character cap")
    assert "OverflowError" not in err and "0" * 100 not in err
    with pytest.raises(JSONInputError, match="310 characters"):
        loads(b"[" + _digits(310) + b"]")
    refused(cli(["sweep", str(base_file), "--grid", f"cluster.gpus={_digits(310).decode()}"]), "--grid cluster.gpus")


@pytest.mark.parametrize("digits", [4300, 4301, 5000, 100_000])
def test_int_digit_limit_is_never_reached(base_file, digits):
    literal = _digits(digits)
    path = base_file.with_name("s.json")
    path.write_bytes(splice(BASE, "training.tokens", literal))
    refused(cli(["evaluate", str(path)]), "training.tokens", f"{digits:,} characters")
    refused(cli(["sweep", str(base_file), "--grid-json", '{"cluster.gpus": [' + literal.decode() + "]}"]),
            "--grid-json: cluster.gpus[0]: number")
    if digits < MAX_GRID_CHARS:
        refused(cli(["sweep", str(base_file), "--grid", f"cluster.gpus=8,{literal.decode()}"]), "--grid cluster.gpus")
    with pytest.raises(ProfileError, match="characters"):
        load_profile(b'{"kind": ' + literal + b"}")


def test_100k_deep_nesting_in_a_scenario(base_file):
    path = base_file.with_name("deep.json")
    path.write_bytes(b'{"model": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    refused(cli(["evaluate", str(path)]), "deep.json: nesting depth 100,001 exceeds the cap of 64")
    with pytest.raises(ScenarioError, match="nesting depth"):
        Scenario.from_json("[" * 100_000)


def test_100k_deep_nesting_in_grid_json(base_file):
    deep = '{"cluster.gpus": ' + "[" * 100_000 + "]" * 100_000 + "}"
    refused(cli(["sweep", str(base_file), "--grid-json", deep]), "--grid-json: nesting depth")
    grid = base_file.with_name("grid.json")
    grid.write_text(deep)
    refused(cli(["sweep", str(base_file), "--grid-json", str(grid)]), "grid.json: nesting depth")
    refused(cli(["sweep", str(base_file), "--grid", "cluster.gpus=" + "[" * 9_000]), "--grid cluster.gpus: nesting")
    refused(cli(["sweep", str(base_file), "--grid", "cluster.gpus=" + "[" * 100_000]), "--grid", "character cap")


def test_non_utf8_file(base_file):
    path = base_file.with_name("latin1.json")
    path.write_bytes('{"model": {"params": 1e9}, "quality": {"law": "café"}}'.encode("latin-1"))
    refused(cli(["evaluate", str(path)]), "latin1.json: not a UTF-8 text file")
    refused(cli(["evaluate", "-"], stdin=b"\xff\xfe{}"), "standard input: not a UTF-8 text file")
    refused(cli(["sweep", str(base_file), "--grid-json", str(path)]), "not a UTF-8 text file")
    with pytest.raises(JSONInputError, match=r"upload\.json: not a UTF-8 text file"):
        read_upload(b"\x80", "upload.json", 1000)


def test_out_to_a_directory(base_file, tmp_path):
    refused(cli(["sweep", str(base_file), "--grid", "cluster.gpus=8", "--out", str(tmp_path)]), "is a directory")


def test_out_into_a_missing_folder(base_file, tmp_path):
    out = tmp_path / "no" / "such" / "sweep.csv"
    refused(cli(["sweep", str(base_file), "--grid", "cluster.gpus=8", "--out", str(out)]), "does not exist")
    assert not out.parent.exists()


def test_out_never_overwrites_an_input(base_file, tmp_path):
    before = base_file.read_text()
    for force in ([], ["--force"]):
        refused(cli(["sweep", str(base_file), "--grid", "cluster.gpus=8", "--out", str(base_file), *force]),
                "is an input of this sweep")
    assert base_file.read_text() == before
    grid = tmp_path / "grid.json"
    grid.write_text('{"cluster.gpus": [8]}')
    refused(cli(["sweep", str(base_file), "--grid-json", str(grid), "--out", str(grid), "--force"]), "is an input")
    link = tmp_path / "same.json"  # another name for the same file
    link.symlink_to(base_file)
    refused(cli(["sweep", str(base_file), "--grid", "cluster.gpus=8", "--out", str(link), "--force"]), "is an input")


def test_existing_out_needs_force(base_file, tmp_path):
    out = tmp_path / "sweep.csv"
    out.write_text("precious\n")
    refused(cli(["sweep", str(base_file), "--grid", "cluster.gpus=8", "--out", str(out)]), "--force")
    assert out.read_text() == "precious\n"
    run = settled(cli(["sweep", str(base_file), "--grid", "cluster.gpus=8,16", "--out", str(out), "--force"]))
    assert run.rc == 0 and out.read_text().count("\n") == 3


def test_out_write_failure_is_a_message(base_file):
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full")
    refused(cli(["sweep", str(base_file), "--grid", "cluster.gpus=8", "--out", "/dev/full", "--force"]),
            "cannot write")


def _python() -> list[str]:
    return [sys.executable, "-m", "simulator"]


def test_broken_pipe_through_head_ends_quietly(base_file):
    """`sweep ... | head -1` through a real pipe: the CSV is far larger than the pipe buffer."""
    sweep_cmd = [*_python(), "sweep", str(base_file), "--grid", "cluster.gpus=" + ",".join(map(str, range(8, 1008))),
                 "--grid", "training.zero_stage=0,1,2,3"]
    producer = subprocess.Popen(sweep_cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    head = subprocess.Popen(["head", "-1"], stdin=producer.stdout, stdout=subprocess.PIPE)
    producer.stdout.close()  # only head holds the read end: when head exits, the producer's writes fail
    first, _ = head.communicate(timeout=120)
    err = producer.stderr.read()
    producer.stderr.close()
    assert producer.wait(timeout=120) == 0, err
    assert first.startswith(b"cluster.gpus,") and first.count(b"\n") == 1
    assert err == b"", err.decode(errors="replace")[-2000:]


def test_broken_pipe_in_process_is_quiet(base_file):
    class Closed(io.StringIO):
        def write(self, s):
            raise BrokenPipeError(32, "Broken pipe")

    err = io.StringIO()
    with contextlib.redirect_stdout(Closed()), contextlib.redirect_stderr(err):
        assert main(["sweep", str(base_file), "--grid", "cluster.gpus=8,16"]) == 0
        assert main(["evaluate", str(base_file)]) == 0
        assert main(["catalog"]) == 0
    assert err.getvalue() == ""


def test_50mb_string_is_echoed_truncated():
    huge = "x" * (50 * 1024 * 1024)
    data = json.dumps({"model": {"params": huge}}).encode()
    start = time.perf_counter()
    with pytest.raises(JSONInputError) as info:  # the reader's own string cap
        loads(data, max_bytes=len(data), source="big.json")
    assert len(str(info.value)) < 400 and "big.json" in str(info.value) and "52,428,800" in str(info.value)
    with pytest.raises(JSONInputError, match="over the 1,048,576-byte cap"):  # scenarios: the size cap first
        loads(data)
    for key in ("model.params", "model.preset", "training.sequence_parallel", "cluster.accelerator", "cluster.gpus"):
        with pytest.raises(ScenarioError) as info:  # from Python, past the reader: coerce truncates
            Scenario.from_dict({key.split(".")[0]: {key.split(".")[1]: huge}})
        assert key in str(info.value) and len(str(info.value)) < 1_000
    with pytest.raises(ScenarioError) as info:
        parse_sections({"model": {huge: 1}, huge: {}})
    assert len(str(info.value)) < 1_000
    with pytest.raises(ScenarioError) as info:
        sweep(Scenario.from_dict(BASE), {"cluster.gpus": [huge], huge: [1]})
    assert len(str(info.value)) < 1_000
    assert time.perf_counter() - start < 10


def test_200kb_escaped_quote_string_parses_in_linear_time():
    value = '\\"' * 100_000  # 200 KB of escaped quotes: the old regex pre-scan took minutes
    for data, parse in ((f'{{"note": "{value}"}}'.encode(), loads), (f'{{"kind": "{value}"}}'.encode(), parse_json),
                        (f'{{"model": {{"preset": "{value}"}}}}', Scenario.from_json)):
        start = time.perf_counter()
        with contextlib.suppress(ScenarioError):  # the preset is refused by name, after parsing
            assert len(parse(data)) == 1
        assert time.perf_counter() - start < 0.5
    start = time.perf_counter()
    with pytest.raises(ProfileError, match="not a Modelfolio profile"):
        load_profile(f'{{"kind": "{value}"}}')
    assert time.perf_counter() - start < 0.5
    times = {}
    for n in (200_000, 2_000_000):  # linear: ten times the text, about ten times the time
        data = b'["' + b'\\"' * (n // 2) + b'"]'
        start = time.perf_counter()
        assert loads(data, max_bytes=10 * n, max_string_bytes=10 * n) == ['"' * (n // 2)]
        times[n] = time.perf_counter() - start
    assert times[2_000_000] < 1.0, times


@pytest.mark.parametrize("pattern", [b'\\"', b"\\\\", b'"', b"[", b'"[', b"\\", b'\\\\\\"', b",", b"9"])
def test_prescan_is_linear_on_pathological_text(pattern):
    data = pattern * (4_000_000 // len(pattern))
    start = time.perf_counter()
    with contextlib.suppress(JSONInputError):
        loads(data, max_bytes=len(data))
    assert time.perf_counter() - start < 2.0


def test_duplicate_keys_are_named_with_their_path(base_file):
    path = base_file.with_name("dup.json")
    path.write_text('{"model": {"params": 1e9}, "cluster": {"gpus": 8, "tp": 1, "gpus": 16}}')
    refused(cli(["evaluate", str(path)]), "dup.json: cluster: duplicate key 'gpus'")
    refused(cli(["sweep", str(base_file), "--grid-json", '{"cluster.gpus": [8], "cluster.gpus": [16]}']),
            "--grid-json: duplicate key 'cluster.gpus'")
    with pytest.raises(JSONInputError) as info:
        loads('{"a": [1, {"b": {"c": 1, "c": 2}}]}')
    assert info.value.path == "a[1].b" and "duplicate key 'c'" in str(info.value)
    with pytest.raises(ProfileError, match=r"fits\.compute: duplicate key 'gemm'"):
        load_profile(b'{"fits": {"compute": {"gemm": 1, "gemm": 2}}}')


def test_nan_and_overflow_are_named(base_file):
    for literal, needle in ((b"NaN", "NaN is not allowed"), (b"-Infinity", "-Infinity is not allowed"),
                            (b"1e999", "number 1e999 overflows to infinity")):
        path = base_file.with_name("n.json")
        path.write_bytes(splice(BASE, "finance.gpu_hour_usd", literal))
        refused(cli(["evaluate", str(path)]), "n.json: finance.gpu_hour_usd: " + needle)


def test_tokens_fewer_than_one_step(base_file):
    scenario = {"model": {"params": 1.3e9, "seq_len": 2048}, "training": {"tokens": 1e6, "global_batch_seqs": 1024}}
    message = ("training.tokens = 1,000,000: fewer tokens than one optimizer step (global batch × sequence = "
               "2,097,152 tokens); train at least 2,097,152 tokens or shrink the batch")
    with pytest.raises(ScenarioError) as info:
        Scenario.from_dict(scenario)
    assert message in info.value.problems
    path = base_file.with_name("few.json")
    path.write_text(json.dumps(scenario))
    refused(cli(["evaluate", str(path)]), message)
    frame = sweep(Scenario.from_dict(BASE), {"training.tokens": [1e6, 2_097_152, 1e9]})
    assert list(frame["valid"]) == [False, True, True]
    assert frame["reason"][0] == "training.tokens: fewer tokens than one optimizer step"
    ok = evaluate(Scenario.from_dict({**scenario, "training": {**scenario["training"], "tokens": 2_097_152}}))
    check_plan(ok.to_dict())


def test_sweep_memory_estimate_says_how_many_rows_fit(base_file):
    grid = {k: list(range(1, 300)) for k in ("cluster.gpus", "model.layers", "training.global_batch_seqs",
                                             "cluster.gpus_per_node")}
    err = refused(cli(["sweep", str(base_file), "--grid-json", json.dumps(grid)]), "rows fit", "GB cap")
    assert f"{MAX_FRAME_BYTES / 1e9:.3g} GB" in err
    with pytest.raises(ScenarioError, match="rows fit"):  # int64 would wrap this product; Python ints do not
        sweep(Scenario.from_dict(BASE), {f"k{i}": [1, 2] for i in range(200)})


def test_grid_argument_cap(base_file):
    refused(cli(["sweep", str(base_file), "--grid", "cluster.gpus=" + "8," * MAX_GRID_CHARS]), "character cap")


def test_many_problems_are_counted_not_all_printed(base_file):
    path = base_file.with_name("keys.json")
    path.write_text(json.dumps({"model": {"params": 1e9, **{f"k{i}": i for i in range(5_000)}}}))
    err = refused(cli(["evaluate", str(path)]), "more problems")
    assert err.count("\n") <= 25


def test_oversized_inputs_refused_before_reading(base_file, tmp_path):
    big = tmp_path / "big.json"
    with big.open("wb") as f:
        f.truncate(3 * 1024 * 1024 * 1024)  # 3 GB, sparse: never read
    refused(cli(["evaluate", str(big)]), "over the 1,048,576-byte cap")
    refused(cli(["evaluate", "-"], stdin=b" " * (2 * 1024 * 1024)), "standard input", "cap")
    with pytest.raises(ProfileError, match="over the"):
        load_profile(big)


@pytest.mark.parametrize("key", KEYS)
def test_wrong_types_in_every_key(key):
    wrong = [b'"text"', b"true", b"[]", b"{}", b"[1, 2]", b'{"a": 1}', b"-1", b"0", b"1.5", b'""', b"1e308",
             b"1e999", b"NaN", _digits(310), b'"' + b"x" * 100_000 + b'"', b"[" * 70 + b"]" * 70]
    for base in BASES:
        for literal in wrong:
            try:
                Scenario.from_json(splice(base, key, literal), source="s.json")
            except ScenarioError as exc:
                text = str(exc)
                assert all(len(p) < 1_000 for p in exc.problems), text[:300]
                assert key in text or key.partition(".")[0] in text or "s.json" in text, (key, literal[:20], text)


def test_wrong_types_in_every_key_through_the_cli(tmp_path):
    path = tmp_path / "s.json"
    for key in KEYS:
        path.write_bytes(splice(BASE, key, b'{"a": [1]}'))
        refused(cli(["evaluate", str(path)]), key)


def test_a_handful_through_a_real_subprocess(tmp_path):
    cases = {
        "int.json": splice(BASE, "model.params", _digits(5000)),
        "deep.json": b"[" * 100_000,
        "latin1.json": b'{"model": {"params": 1e9, "x": "\xe9"}}',
        "dup.json": b'{"model": {"params": 1e9, "params": 2e9}}',
        "nan.json": splice(BASE, "model.params", b"NaN"),
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
    runs = [[*_python(), "evaluate", str(tmp_path / name)] for name in cases]
    runs += [[*_python(), "sweep", str(tmp_path / "int.json"), "--grid", "cluster.gpus=8", "--out", str(tmp_path)],
             [*_python(), "sweep", "-", "--grid-json", "{" + '"a": [' * 10_000]]
    for argv in runs:
        proc = subprocess.run(argv, capture_output=True, timeout=120, cwd=ROOT, input=json.dumps(BASE).encode())
        err = proc.stderr.decode(errors="replace")
        assert proc.returncode == EXIT_BAD_INPUT, (argv[3:], err[-1000:])
        assert "Traceback" not in err and err.startswith("error: ") and len(err) < 2_000, err[-1000:]


def test_read_upload_and_shorten():
    assert read_upload(b'{"a": 1}', "up.json", 100) == {"a": 1}
    with pytest.raises(JSONInputError, match=r"up\.json: input is 9 bytes, over the 5-byte cap"):
        read_upload(b'{"a": 11}', "up.json", 5)
    with pytest.raises(JSONInputError) as info:  # a 500 KB key in the path of a refused value is cut short
        loads('{"' + "k" * 500_000 + '": {"a": NaN}}')
    assert len(str(info.value)) < 300 and str(info.value).endswith("...a: NaN is not allowed (JSON numbers must "
                                                                   "be finite; use null)")
    assert shorten(10**5000) == "<an integer of about 5,000 digits>"
    assert len(shorten("x" * 10**7)) < 100 and len(shorten([[[[[[1]]]]]] * 10**6)) < 100


# ---------------------------------------------------------------- huge values from Python callers

HUGE = 10**5000  # built by arithmetic: Python refuses to parse or print ints over 4,300 digits


@pytest.mark.parametrize("kind", ["int", "float", "choice", "bool", "device"])
def test_coerce_never_prints_a_huge_int(kind):
    inp = next(i for i in INPUTS.values() if i.kind == kind)
    value, problem = coerce(inp, HUGE)
    assert value is None and inp.key in problem and len(problem) < 300


@pytest.mark.parametrize("where", ["section", "key", "grid"])
def test_huge_int_keys_from_python_are_messages(where):
    with pytest.raises(ScenarioError):
        if where == "section":
            parse_sections({HUGE: {}})
        elif where == "key":
            parse_sections({"model": {HUGE: 1}})
        else:
            sweep(Scenario.from_dict(BASE), {HUGE: [1]})


# ---------------------------------------------------------------- share links

LINK_KEYS = sorted({inp.link for inp in INPUTS.values()} | {"b", "zz"} | {f"b.{inp.link}" for inp in INPUTS.values()})
LINK_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "1e400", "-1", "nan", "inf", "1" * 500, "x" * 5_000, "0x10", "１２", "true", "[]", "{}",
                     "llama-3-70b", "h100", "H999", "\x00", "%00", "1e-320"]),
    st.integers(-10**30, 10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


@pytest.mark.fuzz
@hostile(300)
@given(st.dictionaries(st.one_of(st.sampled_from(LINK_KEYS), st.text(max_size=20)),
                       st.one_of(LINK_TEXT, st.lists(LINK_TEXT, max_size=3)), max_size=12))
def test_hostile_share_links_end_with_messages_or_a_scenario(query):
    from simulator.share import from_query

    started = time.perf_counter()
    shared = from_query(query, {"model": {"preset": "chinchilla-70b"}})
    assert all(len(p) < 400 for p in shared.problems)
    for sections in (shared.inputs, shared.baseline or {}):
        try:
            Scenario.from_dict(sections)
        except ScenarioError as exc:
            assert all(len(p) < 2_000 for p in exc.problems)
    assert time.perf_counter() - started < SECONDS


# ---------------------------------------------------------------- decide accepts what evaluate accepts

# every key the search may choose, a few values each: the property is about which scenarios `decide` accepts, not
# about the size of the search (the default space takes a second a scenario)
DECIDE_SPACE = {"model.params": [1e8, 1e9], "training.tokens": [2e10, 2e11], "cluster.gpus": [8, 64],
                "cluster.tp": [1, 2], "cluster.pp": [1, 2], "compression.weight_bits": [16, 4],
                "compression.quant_method": ["gptq"], "serving.gpus_per_replica": [1, 2]}
QUANTIZED = {"weight_bits": 4, "act_bits": 8, "quant_method": "smoothquant"}  # the refusal the search once made


@st.composite
def decision_scenarios(draw: st.DrawFn) -> dict[str, Any]:
    """A legal scenario with a `decision` section: a base, a few keys at a bound, default or choice, and now and
    then a compression the user chose."""
    doc = {sec: dict(v) for sec, v in draw(st.sampled_from(BASES)).items()}
    if draw(st.booleans()):
        doc["compression"] = dict(QUANTIZED)
    for key in draw(st.lists(st.sampled_from(KEYS), min_size=1, max_size=4, unique=True)):
        section, _, name = key.partition(".")
        doc.setdefault(section, {})[name] = draw(edge_values(key))
    decision = doc.setdefault("decision", {})
    decision["samples"] = min(int(decision.get("samples", 50)), 50)  # the Monte Carlo is not what is tested
    return doc


@pytest.mark.fuzz
@hostile(25)
@given(decision_scenarios())
def test_decide_accepts_every_scenario_evaluate_accepts(doc):
    from hypothesis import assume

    from simulator.decision import decide

    try:
        scenario = Scenario.from_dict(doc)
        evaluate(scenario)
    except ScenarioError:
        assume(False)
    d = decide(scenario, space=DECIDE_SPACE)  # a ScenarioError here is the refusal this test forbids
    assert (d.recommendation is None) == (d.missing is not None)
    if d.missing is not None:
        assert d.missing.reason and "nan" not in d.missing.reason.lower(), d.missing.reason
    if d.recommendation is not None:
        assert math.isfinite(d.total_cost_usd) and math.isfinite(d.quality_loss)
    elif d.missing.closest is not None:
        assert math.isfinite(d.missing.closest["total_cost_usd"]), d.missing
    for key in ("compression.weight_bits", "compression.act_bits", "compression.quant_method"):
        if key in scenario.given and d.recommendation is not None:  # the user's choice is kept, not searched
            assert d.recommendation.scenario.value(key) == scenario.value(key), key


# ---------------------------------------------------------------- names and JSON messages

NAME_CHARS = st.one_of(st.characters(exclude_categories=()),  # any code point, lone surrogates included
                       st.sampled_from(["\u200b", "\u200d", "\u2060", "\ufeff", "\u200e", "\u202e", " ", "\t", "\n",
                                        "\x00", "\ud800", "\udfff", "a", "模", "🚀", "ไ", "한", "ह"]))


@pytest.mark.fuzz
@hostile(300)
@given(st.text(NAME_CHARS, max_size=12))
def test_a_name_is_refused_in_words_or_shows_something_every_encoder_can_write(text):
    """From Python or from a file: a name is refused with a "Name:" sentence (that never echoes the name), or it
    is one line that shows something (or nothing at all: no name) and encodes as UTF-8 (a page, chart or PDF)."""
    outcomes = []
    for build in (lambda: Scenario.from_dict({"name": text, **BASE}),
                  lambda: Scenario.from_json(json.dumps({"name": text, **BASE}), source="s.json")):
        try:
            name = build().name
        except ScenarioError as exc:
            message = str(exc)
            assert message.startswith(("Name: ", "s.json: name: ")) and len(message) < 300, message
            message.encode("utf-8")
            outcomes.append(None)
            continue
        name.encode("utf-8")
        assert name == " ".join(name.split()), repr(name)
        assert name == "" or any(not ch.isspace() and unicodedata.category(ch) not in ("Cc", "Cf") for ch in name)
        outcomes.append(name)
    assert outcomes[0] == outcomes[1], (text, outcomes)


@pytest.mark.parametrize("text, said", [
    ('{"a": "x\ny"}', "a raw control character (U+000A) inside a string at line 1 column 9; write it as an escape"),
    ('{"a": "x\ty"}', "(U+0009) inside a string at line 1 column 9"),
    ('{"a": "abc', "Unterminated string starting at line 1 column 7 (file truncated?)"),
    ('{"a" 1}', "Expecting ':' delimiter at line 1 column 6"),
    ('{"a": 1,}', "Expecting property name enclosed in double quotes at line 1 column 9"),
])
def test_json_syntax_messages_read_once(text, said):
    with pytest.raises(JSONInputError) as info:
        loads(text, source="s.json")
    message = str(info.value)
    assert said in message and "at at" not in message and message.count(" at line ") == 1, message


def test_unpaired_surrogate_escapes_are_refused_with_their_path():
    for text, path in (('{"name": "\\ud800"}', "name"), ('{"a": [1, {"b\\udc00": 2}]}', "a[1].b\\udc00"),
                       ('["ok", "\\udfff\\ud800"]', "[1]")):
        with pytest.raises(JSONInputError) as info:
            loads(text, source="s.json")
        assert info.value.path == path and "unpaired surrogate escape" in str(info.value), str(info.value)
        str(info.value).encode("utf-8")  # the message itself can be printed
    assert loads('{"k": "\\ud83d\\ude80 \\\\ud800"}') == {"k": "🚀 \\ud800"}  # a pair, and an escaped backslash
