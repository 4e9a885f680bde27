"""Every input file cai reads ends, when bad, in one line naming file:line and what is wrong; or,
with `inputs.on_bad_row: skip`, its bad rows are skipped and counted by reason."""

import json
import re
import subprocess
import sys

import pytest
from conftest import ROOT, small_config

from cai.config.run import load_config
from cai.constitution import ConstitutionError, load_constitution
from cai.constitution.limits import MAX_FILE_BYTES
from cai.errors import CaiError, ConfigError, DataError
from cai.inputs.sources import BadRows, load_human_pairs, load_prompts

DEFAULT = (ROOT / "principles.yaml").read_text()


def _cai(*args, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cai.cli", *args], capture_output=True,
                          text=True, cwd=cwd or ROOT, timeout=120)


def _one_line(result, *expected):
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    for text in expected:
        assert text in lines[0], lines[0]


# -- the constitution ------------------------------------------------------------------------

def test_deep_nesting_ends_in_one_line_naming_the_line(tmp_path):
    deep = tmp_path / "deep.yaml"
    deep.write_text("name: x\nversion: '1'\nsystem: s\nprinciples:\n  " + "[" * 5000 + "]" * 5000)
    _one_line(_cai("plan", "--set", f"constitution={deep}", "--run-dir", str(tmp_path / "r")),
              f"{deep}:5: nested more than 32 levels deep")


def test_a_huge_field_names_the_field_and_the_limit(tmp_path):
    huge = tmp_path / "huge.yaml"
    huge.write_text(DEFAULT.replace("critique: ", "critique: " + "x" * 2_000_000 + " ", 1))
    with pytest.raises(ConstitutionError, match=r"principle 'dangerous-help': 'critique' is "
                                                r"2,000,\d+ characters; the limit is 8,000"):
        load_constitution(huge)
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    with pytest.raises(ConstitutionError, match=r"is 8,000,001 bytes; the limit is 8,000,000"):
        load_constitution(big)


def test_an_alias_bomb_is_refused_quickly(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 9)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n" + DEFAULT)
    with pytest.raises(ConstitutionError, match="aliases are expanded"):
        load_constitution(bomb)


def test_texts_too_long_for_the_judge_name_the_principle_and_its_line(tmp_path):
    long = tmp_path / "long.yaml"
    text = "y" * 7000
    long.write_text(DEFAULT.replace("critique: ", f"critique: {text} ", 1)
                    .replace("revision: ", f"revision: {text} ", 1))
    _one_line(_cai("plan", "--set", f"constitution={long}", "--set", "judge.context_tokens=4096",
                   "--run-dir", str(tmp_path / "r")),
              f"{long}:", "principle 'dangerous-help': its judge prompts take ~",
              "judge.context_tokens")


def test_what_must_load_loads(tmp_path):
    crlf = tmp_path / "crlf.yaml"
    crlf.write_bytes(b"\xef\xbb\xbf" + DEFAULT.replace("\n", "\r\n").encode())
    assert load_constitution(crlf).ids() == load_constitution(ROOT / "principles.yaml").ids()
    many = tmp_path / "many.yaml"
    many.write_text("name: n\nversion: '1'\nsystem: s\nprinciples:\n" + "".join(
        f"  - {{id: p{i}, critique: 'c {{x}}', revision: r, comparison: q, tags: [t]}}\n"
        for i in range(20_000)))
    c = load_constitution(many)
    assert len(c.principles) == 20_000 and c.principles[0].critique == "c {x}"


# -- the run config --------------------------------------------------------------------------

@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe\x00", "not UTF-8 text"),
    (b"a: " + b"[" * 3000 + b"]" * 3000, ":1: nested more than 32 levels deep"),
    (b"generate:\n  samples: [\n", ":3: not valid YAML"),
    (b"- a\n- b\n", "a run config must be a mapping"),
    (b"generate:\n  smaples: 2\n", "unknown config key 'generate.smaples' (did you mean 'samples'?)"),
])
def test_bad_run_configs(tmp_path, content, message):
    f = tmp_path / "run.yaml"
    f.write_bytes(content)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[").replace("?", r"\?")):
        load_config(f)
    with pytest.raises(ConfigError, match="is not a file"):
        load_config(tmp_path)


def test_bad_set_values():
    with pytest.raises(ConfigError, match=r"--set generate.samples:1: not valid YAML"):
        load_config(None, ["generate.samples=["])
    with pytest.raises(ConfigError, match=r"'generate.samples': .*greater than or equal to 1"):
        load_config(None, ["generate.samples=0"])


# -- prompt files ----------------------------------------------------------------------------

PROMPT_CASES = [
    ("bad.jsonl", b'{"prompt": "ok"}\n{"prompt": \n', "bad.jsonl:2: not valid JSON", "invalid_json"),
    ("bad.jsonl", b'{"prompt": "ok"}\n{"text": "x"}\n', "bad.jsonl:2: no 'prompt'", "missing_field"),
    ("bad.jsonl", b'{"prompt": "ok"}\n{"prompt": 5}\n', "'prompt' must be text, got int", "not_text"),
    ("bad.jsonl", b'{"prompt": "ok"}\n{"prompt": "  "}\n', "bad.jsonl:2: 'prompt' is empty",
     "empty_text"),
    ("bad.jsonl", b'{"prompt": "ok"}\n{"prompt": "' + b"x" * 1_000_000 + b'"}\n',
     "'prompt' is 1,000,000 characters; the limit is 16,000", "too_long"),
    ("bad.jsonl", b'{"prompt": "ok"}\n{"prompt": "ok"}\n', "bad.jsonl:2: duplicate prompt id",
     "duplicate_id"),
    ("bad.jsonl", b'{"prompt": "ok"}\n{"prompt": "caf\xe9"}\n', "bad.jsonl:2: not UTF-8 text",
     "invalid_utf8"),
    ("bad.jsonl", b'{"prompt": "ok"}\n[1, 2]\n', "bad.jsonl:2: expected a JSON object", "not_an_object"),
    ("bad.jsonl", b'{"prompt": "ok"}\n' + b"[" * 100_000 + b"\n", "bad.jsonl:2: not valid JSON",
     "invalid_json"),
    ("bad.jsonl", b'{"prompt": "ok"}\n{"prompt": "b", "kind": "evil"}\n',
     "kind must be 'red-team' or 'benign'", "bad_kind"),
]


@pytest.mark.parametrize("name, content, message, reason", PROMPT_CASES)
def test_bad_prompt_rows_stop_or_are_skipped_and_counted(tmp_path, name, content, message, reason):
    f = tmp_path / name
    f.write_bytes(content)
    with pytest.raises(DataError, match=message.replace("(", r"\(")) as err:
        load_prompts(str(f))
    assert "\n" not in str(err.value)
    bad = BadRows("skip")
    assert [p["prompt"] for p in load_prompts(str(f), bad=bad)] == ["ok"]
    assert bad.counts == {reason: 1}


def test_files_with_nothing_usable_always_stop(tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(DataError, match="empty.jsonl: no prompts"):
        load_prompts(str(tmp_path / "empty.jsonl"), bad=BadRows("skip"))
    (tmp_path / "p.csv").write_text("id,text\nx,Hello\n")
    with pytest.raises(DataError, match=r"p.csv:2: no 'prompt' \(columns: id, text\)"):
        load_prompts(str(tmp_path / "p.csv"))
    with pytest.raises(DataError, match=r"p.csv: no prompts \(skipped missing_field: 1\)"):
        load_prompts(str(tmp_path / "p.csv"), bad=BadRows("skip"))
    (tmp_path / "bin.csv").write_bytes(b"prompt\nok\nbad \xff\n")
    with pytest.raises(DataError, match=r"bin.csv:3: not UTF-8 text"):
        load_prompts(str(tmp_path / "bin.csv"))
    from datasets import Dataset
    Dataset.from_list([{"text": "Q1"}]).save_to_disk(str(tmp_path / "ds"))
    with pytest.raises(DataError, match=r"ds\[0\]: no 'prompt' \(columns: text\)"):
        load_prompts(str(tmp_path / "ds"))


# -- calibration files -----------------------------------------------------------------------

@pytest.mark.parametrize("row, message, reason", [
    ({"prompt": "p", "chosen": "a"}, "no 'rejected'", "missing_field"),
    ({"prompt": "p", "rejected": "a"}, "no 'chosen'", "missing_field"),
    ({"prompt": "p", "chosen": "same", "rejected": "same"}, "'chosen' and 'rejected' are the same text",
     "chosen_is_rejected"),
    ({"prompt": "p", "chosen": "a", "rejected": ""}, "'rejected' is empty", "empty_text"),
])
def test_bad_calibration_rows(tmp_path, row, message, reason):
    f = tmp_path / "cal.jsonl"
    good = {"prompt": "p", "chosen": "good", "rejected": "bad"}
    f.write_text(json.dumps(good) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(DataError, match=f"cal.jsonl:2: {message}"):
        load_human_pairs(str(f))
    bad = BadRows("skip")
    assert len(load_human_pairs(str(f), bad)) == 1 and bad.counts == {reason: 1}
    f.write_text("")
    with pytest.raises(DataError, match="no human preference pairs"):
        load_human_pairs(str(f))


def test_skipped_rows_show_in_the_stage_line_and_metrics(fake_backend, tmp_path):
    from cai.runs.runner import run_stages
    source = tmp_path / "prompts.jsonl"
    rows = [json.dumps({"prompt": f"Question {i}?"}) for i in range(6)]
    source.write_text("\n".join(rows + ["{oops", json.dumps({"prompt": 3})]) + "\n")
    cfg = small_config(tmp_path / "stop", **{"prompts.source": str(source)})
    with pytest.raises(CaiError, match=r"prompts.jsonl:7: not valid JSON"):
        run_stages(cfg, ["generate"], echo=lambda s: None)
    lines = []
    cfg = small_config(tmp_path / "skip", **{"prompts.source": str(source),
                                             "inputs.on_bad_row": "skip"})
    metrics = run_stages(cfg, ["generate"], echo=lines.append)
    assert "bad_row_invalid_json: 1, bad_row_not_text: 1" in lines[0]
    assert metrics["stages"]["generate"]["dropped"] == {"bad_row_invalid_json": 1,
                                                        "bad_row_not_text": 1}


def test_a_bad_input_leaves_no_run_directory_behind(fake_backend, tmp_path):
    from cai.runs.runner import run_stages
    source = tmp_path / "prompts.jsonl"
    source.write_text('{"prompt": "fine"}\n{"prompt": \n')
    run_dir = tmp_path / "run"
    with pytest.raises(CaiError, match=r"prompts.jsonl:2: not valid JSON"):
        run_stages(small_config(run_dir, **{"prompts.source": str(source)}), ["generate"],
                   echo=lambda s: None)
    assert not run_dir.exists()
    bad_constitution = tmp_path / "c.yaml"
    bad_constitution.write_text("name: [\n")
    with pytest.raises(CaiError, match=r"c.yaml:2: invalid YAML"):
        run_stages(small_config(run_dir, constitution=str(bad_constitution)), ["generate"],
                   echo=lambda s: None)
    assert not run_dir.exists()


@pytest.mark.parametrize("key", ["label.tags", "critique.tags"])
def test_a_tag_no_principle_has_stops_before_any_work(tmp_path, key):
    """A misspelt tag used to leave its principles out of labelling without a word."""
    from cai.config.run import load_config
    from cai.errors import CaiError
    from cai.inputs.checks import preflight
    cfg = load_config(None, [f"run_dir={tmp_path / 'run'}", f"{key}=[harmlesness]"])
    with pytest.raises(CaiError, match=rf"^{re.escape(key)}: unknown tag 'harmlesness' \(did you "
                                       r"mean 'harmlessness'\?\)"):
        preflight(cfg)
    assert not (tmp_path / "run").exists()
    from cai.runs.check import check  # `cai check` applies the same rule
    with pytest.raises(CaiError, match=rf"^{re.escape(key)}: unknown tag 'harmlesness'"):
        check(cfg)
