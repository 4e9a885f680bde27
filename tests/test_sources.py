import pytest

from cai.errors import DataError
from cai.inputs.sources import load_human_pairs, load_prompts


def test_builtin_default_is_the_slices_training_prompts_mixed_3_to_1_with_benign_ones():
    from cai.config.run import load_config
    from cai.inputs.human_slice import default_prompts, human_slice
    cfg = load_config(None, [])
    prompts = default_prompts(cfg)
    ids = [p["id"] for p in prompts]
    assert len(set(ids)) == len(ids)
    assert [p["kind"] for p in prompts[:8]] == ["red-team"] * 3 + ["benign"] + ["red-team"] * 3 + ["benign"]
    people = human_slice(cfg)
    red = {p["prompt"] for p in prompts if p["kind"] == "red-team"}
    assert red == {h["prompt"] for h in people.train}
    assert not red & {h["prompt"] for h in people.heldout}
    benign = [p["id"] for p in prompts if p["kind"] == "benign"]
    assert len(benign) == 80 and any(i.startswith("cai-borderline") for i in benign[:8])


def test_jsonl_csv_and_datasets_dir(tmp_path):
    (tmp_path / "p.jsonl").write_text('{"id": "a", "prompt": "Hi"}\n\n{"prompt": "Yo"}\n')
    (tmp_path / "p.csv").write_text("id,text\nx,Hello there\n")
    assert [p["id"] for p in load_prompts(str(tmp_path / "p.jsonl"))][0] == "a"
    assert load_prompts(str(tmp_path / "p.csv"), field="text") == [{"id": "x", "prompt": "Hello there"}]
    from datasets import Dataset
    Dataset.from_list([{"prompt": "Q1"}, {"prompt": "Q2"}]).save_to_disk(str(tmp_path / "ds"))
    assert [p["prompt"] for p in load_prompts(str(tmp_path / "ds"))] == ["Q1", "Q2"]


def test_bad_rows_name_file_and_line(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "ok"}\n{"prompt": \n')
    with pytest.raises(DataError, match=r"p.jsonl:2: not valid JSON"):
        load_prompts(str(f))
    f.write_text('{"prompt": "ok"}\n{"text": "no prompt"}\n')
    with pytest.raises(DataError, match=r"p.jsonl:2: no 'prompt' \(columns: text\)"):
        load_prompts(str(f))
    with pytest.raises(DataError, match="no such file"):
        load_prompts(str(tmp_path / "nope.jsonl"))


def test_builtin_calibration_slice():
    pairs = load_human_pairs("builtin:calibration")
    assert len(pairs) == 300 and all(p["chosen"] != p["rejected"] for p in pairs)


def test_a_lone_surrogate_is_a_bad_row_everywhere_text_enters(tmp_path):
    """JSON allows "\\ud800"; no model can read it and hashing it would crash: one line naming
    the file and line, or skipped and counted."""
    import subprocess
    import sys

    from cai.errors import DataError
    from cai.inputs.sources import BadRows, load_human_pairs, load_prompts
    prompts, pairs = tmp_path / "prompts.jsonl", tmp_path / "pairs.jsonl"
    prompts.write_text('{"id": "a", "prompt": "fine"}\n{"id": "b", "prompt": "bad \\ud800"}\n'
                       '{"id": "\\udfff", "prompt": "bad id"}\n')
    pairs.write_text('{"prompt": "p", "chosen": "c", "rejected": "r"}\n'
                     '{"prompt": "p2", "chosen": "\\ud83d", "rejected": "r"}\n')
    with pytest.raises(DataError, match=r"prompts\.jsonl:2: 'prompt' holds a lone surrogate"):
        load_prompts(str(prompts))
    skip = BadRows("skip")
    assert [p["id"] for p in load_prompts(str(prompts), bad=skip)] == ["a"]
    assert skip.counts == {"lone_surrogate": 2}
    with pytest.raises(DataError, match=r"pairs\.jsonl:2: 'chosen' holds a lone surrogate"):
        load_human_pairs(str(pairs))
    # `cai review load` in skip mode says what it skipped
    from cai.store.core import Store
    Store(tmp_path / "run").close()  # a run directory's store, as a first run leaves it
    out = subprocess.run([sys.executable, "-m", "cai.cli", "review", "load", str(pairs),
                          "--run-dir", str(tmp_path / "run"), "--set", "inputs.on_bad_row=skip"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("1 pairs from " + str(pairs) + " are ready to label; "
                                       "skipped lone_surrogate: 1")
