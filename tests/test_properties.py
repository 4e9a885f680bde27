"""Property tests (Hypothesis): any bytes as a constitution, a run config, a prompt file line or a
calibration row give a valid object or cai's own error; nothing else escapes."""

import json
import shutil

from conftest import ROOT, cai
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from cai.config.run import RunConfig, load_config
from cai.constitution import Constitution, ConstitutionError, load_constitution
from cai.errors import ConfigError, DataError
from cai.inputs.sources import BadRows, load_human_pairs, load_prompts

DEFAULT = (ROOT / "principles.yaml").read_bytes()
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

# Bytes that look like YAML often enough to reach past the parser: its punctuation, keys of
# the schema, anchors and aliases, tags, odd encodings.
YAML_BITS = st.sampled_from([
    b"name: ", b"version: ", b"system: ", b"principles:", b"examples:", b"\n", b"  ", b"- ",
    b"id: ", b"critique: ", b"revision: ", b"comparison: ", b"tags: ", b"weight: ", b"[", b"]",
    b"{", b"}", b",", b": ", b"&a ", b"*a", b"!!python/object:os.system ", b"!!binary ", b"|",
    b">", b"'", b'"', b"#", b"\t", b"\xef\xbb\xbf", b"\xff", b"\x00", b"\r\n", b"---\n", b"...",
    b"<<: *a", b"1e999", b"null", b"true", b"x", b"\xe2\x80\xae", b"%YAML 1.1\n", b"? ",
])
YAMLISH = st.lists(YAML_BITS, max_size=60).map(b"".join)


def _file(factory, name: str, data: bytes):
    f = factory.mktemp("input") / name
    f.write_bytes(data)
    return f


def _mutations():
    """The default constitution with a slice of it replaced by arbitrary bytes."""
    return st.tuples(st.integers(0, len(DEFAULT)), st.integers(0, 200), st.binary(max_size=40)) \
        .map(lambda t: DEFAULT[:t[0]] + t[2] + DEFAULT[t[0] + t[1]:])


@SETTINGS
@given(st.one_of(st.binary(max_size=300), YAMLISH, _mutations()))
@example(b"a: " + b"[" * 3000)
@example(b"\xef\xbb\xbf" + DEFAULT.replace(b"\n", b"\r\n"))
def test_any_bytes_as_a_constitution(tmp_path_factory, data):
    f = _file(tmp_path_factory, "principles.yaml", data)
    try:
        assert isinstance(load_constitution(f), Constitution)
    except ConstitutionError as exc:
        assert "\n" not in str(exc) and str(exc).startswith(str(f))


@SETTINGS
@given(st.one_of(st.binary(max_size=300), YAMLISH))
def test_any_bytes_as_a_run_config(tmp_path_factory, data):
    f = _file(tmp_path_factory, "run.yaml", data)
    try:
        assert isinstance(load_config(f), RunConfig)
    except ConfigError as exc:
        assert "\n" not in str(exc)


@SETTINGS
@given(st.text(max_size=60))
def test_any_text_as_a_set_value(value):
    try:
        load_config(None, [f"generate.samples={value}"])
    except ConfigError as exc:
        assert "\n" not in str(exc)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=10)
ROWS = st.dictionaries(st.sampled_from(["id", "prompt", "chosen", "rejected", "kind", "x"]),
                       JSON_VALUES, max_size=5).map(lambda d: json.dumps(d).encode())
LINES = st.one_of(st.binary(max_size=200).filter(lambda b: b"\n" not in b), ROWS)


@SETTINGS
@given(line=LINES, skip=st.booleans())
def test_any_line_of_a_prompt_file(tmp_path_factory, line, skip):
    f = _file(tmp_path_factory, "prompts.jsonl", b'{"prompt": "a fixed first prompt"}\n' + line + b"\n")
    try:
        prompts = load_prompts(str(f), bad=BadRows("skip" if skip else "stop"))
        assert all(isinstance(p["prompt"], str) and p["prompt"] for p in prompts)
    except DataError as exc:
        assert not skip and "\n" not in str(exc) and str(exc).startswith(f"{f}:2: ")


@SETTINGS
@given(line=LINES, skip=st.booleans())
def test_any_calibration_row(tmp_path_factory, line, skip):
    f = _file(tmp_path_factory, "pairs.jsonl", line + b"\n")
    try:
        pairs = load_human_pairs(str(f), BadRows("skip" if skip else "stop"))
        assert all(p["chosen"] != p["rejected"] for p in pairs)
    except DataError as exc:
        assert "\n" not in str(exc)


STORE_READERS = [["history"], ["diff"], ["check"], ["review", "stats"], ["plan"], ["store", "check"]]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(cut=st.one_of(st.none(), st.floats(0, 1)), at=st.floats(0, 1),
       garbage=st.binary(min_size=1, max_size=600))
def test_any_damage_to_a_real_store(small_store, tmp_path_factory, fake_backend, cut, at, garbage):
    """A real small store cut short, or with bytes overwritten anywhere: every command that
    reads it answers or says in one line what is wrong, never a traceback."""
    run = tmp_path_factory.mktemp("damaged") / "run"
    shutil.copytree(small_store, run)
    db = run / "cai.sqlite"
    data = db.read_bytes()
    if cut is not None:
        data = data[:int(len(data) * cut)]
    else:
        i = int(len(data) * at)
        data = data[:i] + garbage + data[i + len(garbage):]
    db.write_bytes(data)
    for args in STORE_READERS:
        code, _, err = cai(run, *args)
        assert "Traceback" not in err and err.count("\n") == (code not in (0, 1)), (args, err)
