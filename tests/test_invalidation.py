"""The proof that reuse is never stale: every config key, every file the config names, the review
labels, the iteration state, each part of a local model and cai's own code.

For every case the data stages run from scratch (tests/invalidation.py) and each stage's
outputs and input fingerprint are compared with a baseline's: outputs that change under an
unchanged fingerprint would be served stale by a rerun, and fail here; a fingerprint that
changes with outputs unchanged is over-invalidation, counted and bounded.
"""

import json
import os
import shutil

import pytest
from invalidation import EDITS, VARIED, cases, config_keys, make_files, prove

from cai.backends.weights import identity
from cai.runs.runner import run_stages
from cai.stages import reuse as stage_reuse

# Over-invalidated (case, stage) pairs measured when this was written (bench/RESULTS.md): a
# change that makes more of them is a regression of reuse, not of correctness.
OVER_INVALIDATION_BOUND = 60


def test_no_input_change_leaves_a_stale_stage(tmp_path, fake_backend):
    results = prove(tmp_path)
    stale = {name: s for name, (s, _) in results.items() if s}
    assert not stale, f"stale stages (outputs changed, fingerprint did not): {stale}"
    over = {name: o for name, (_, o) in results.items() if o}
    assert sum(map(len, over.values())) <= OVER_INVALIDATION_BOUND, over
    assert len(results) == len(config_keys()) - len(VARIED) + len(EDITS) + 1


def test_every_config_key_has_a_case(tmp_path):
    files = make_files(tmp_path)
    named = cases(files, tmp_path / "base")
    assert set(named) | set(VARIED) == {k for k, _ in config_keys()}


def _model_dir(path):
    path.mkdir()
    parts = {"model.safetensors": b"\x00" * 64, "config.json": '{"hidden_size": 8}',
             "generation_config.json": '{"temperature": 0.7}', "tokenizer.json": '{"vocab": {}}',
             "tokenizer_config.json": '{"eos_token": "</s>"}', "special_tokens_map.json": "{}",
             "chat_template.jinja": "{{ messages }}", "README.md": "# a card"}
    for name, data in parts.items():
        (path / name).write_bytes(data if isinstance(data, bytes) else data.encode())
    return path, parts


@pytest.mark.parametrize("part", ["model.safetensors", "config.json", "generation_config.json",
                                  "tokenizer.json", "tokenizer_config.json",
                                  "special_tokens_map.json", "chat_template.jinja"])
def test_every_part_of_a_local_model_names_it(tmp_path, part):
    model, _ = _model_dir(tmp_path / "m")
    before = identity(str(model))
    path = model / part
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[-1] ^= 1  # same size, and the mtime put back as `rsync -a` or `tar x` would
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert identity(str(model)) != before


def test_a_model_card_or_a_new_copy_of_the_same_files_does_not_rename_a_model(tmp_path):
    model, _ = _model_dir(tmp_path / "m")
    before = identity(str(model))
    (model / "README.md").write_text("# another card")
    assert identity(str(model)) == before
    copy = tmp_path / "elsewhere" / "m"
    shutil.copytree(model, copy)
    assert identity(str(copy)) == before


def test_an_edited_chat_template_recomputes_the_policys_answers(tmp_path, tiny_model_dir):
    model = tmp_path / "policy"
    shutil.copytree(tiny_model_dir, model)
    from conftest import small_config
    cfg = small_config(tmp_path / "run", policy=f"transformers:{model}", **{"prompts.limit": 2})
    first = run_stages(cfg, ["generate"], echo=lambda s: None)["stages"]["generate"]
    assert first["model_calls"] == 4
    config = json.loads((model / "tokenizer_config.json").read_text())
    template = model / "chat_template.jinja"
    if template.exists():
        template.write_text(template.read_text().replace("<|im_start|>", "<|im_start|> "))
    else:
        config["chat_template"] = config["chat_template"].replace("<|im_start|>", "<|im_start|> ")
        (model / "tokenizer_config.json").write_text(json.dumps(config))
    again = run_stages(cfg, ["generate"], echo=lambda s: None)["stages"]["generate"]
    assert again["model_calls"] == 4  # asked again, not served from the old template's answers


def test_cais_own_code_names_every_stage(tmp_path):
    tree = {d: tmp_path / d for d in ("pipeline", "constitution")}
    for d, src in stage_reuse.code_dirs().items():
        shutil.copytree(src, tree[d], ignore=shutil.ignore_patterns("__pycache__"))
    assert stage_reuse.tree_digest(tree) == stage_reuse.code_digest()
    before = stage_reuse.tree_digest(tree)
    path = tree["pipeline"] / "stages" / "pairs.py"
    path.write_text(path.read_text() + "\n# a change\n")
    assert stage_reuse.tree_digest(tree) != before
