"""Hub model ids (`transformers:org/name[@revision]`) load offline from a cache laid out as
huggingface_hub lays it out (checked by huggingface_hub's own `scan_cache_dir`)."""

import hashlib
import os

import pytest
from conftest import small_config

from cai.backends import hub
from cai.errors import ModelUnavailable
from cai.runs.runner import run_stages

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _hub_cache(root, model_dir, repo="cai-test/tiny-llama"):
    """huggingface_hub's layout: blobs by content hash, a snapshot of symlinks, refs/main."""
    from huggingface_hub.file_download import repo_folder_name
    repo_dir = root / repo_folder_name(repo_id=repo, repo_type="model")
    snap = repo_dir / "snapshots" / COMMIT
    (repo_dir / "blobs").mkdir(parents=True)
    snap.mkdir(parents=True)
    for f in sorted(model_dir.iterdir()):
        if f.is_file() and not f.name.startswith("."):
            data = f.read_bytes()
            blob = repo_dir / "blobs" / hashlib.sha256(data).hexdigest()
            blob.write_bytes(data)
            os.symlink(os.path.relpath(blob, snap), snap / f.name)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(COMMIT)
    return root


@pytest.fixture
def offline_cache(tmp_path, tiny_model_dir, monkeypatch):
    from huggingface_hub import constants, scan_cache_dir
    cache = _hub_cache(tmp_path / "hub", tiny_model_dir)
    info = scan_cache_dir(cache)
    assert [(r.repo_id, [rev.commit_hash for rev in r.revisions]) for r in info.repos] == \
        [("cai-test/tiny-llama", [COMMIT])]
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache


def test_a_hub_id_loads_offline_and_is_named_by_its_commit(offline_cache, tmp_path):
    cfg = small_config(tmp_path / "run", policy="transformers:cai-test/tiny-llama",
                       **{"prompts.limit": 2, "generate.samples": 1})
    stats = run_stages(cfg, ["generate"], echo=lambda s: None)["stages"]["generate"]
    assert stats["made"] == 2 and stats["model_calls"] == 2
    _, by_branch = hub.hub_identity("cai-test/tiny-llama")
    _, by_commit = hub.hub_identity(f"cai-test/tiny-llama@{COMMIT}")
    assert by_branch == by_commit and by_branch["revision"] == COMMIT
    assert by_branch["model"] == "cai-test/tiny-llama" and by_branch["weights"]


def test_a_changed_file_in_the_cache_names_another_model(offline_cache):
    _, before = hub.hub_identity("cai-test/tiny-llama")
    snap = offline_cache / "models--cai-test--tiny-llama" / "snapshots" / COMMIT
    config = snap / "generation_config.json"
    text = config.read_text() if config.exists() else "{}"
    config.unlink(missing_ok=True)
    config.write_text(text.replace("{", '{"temperature": 0.5, ', 1) if text != "{}" else
                      '{"temperature": 0.5}')
    _, after = hub.hub_identity("cai-test/tiny-llama")
    assert after["revision"] == before["revision"] and after["files"] != before["files"]


def test_a_hub_id_not_in_the_cache_offline_is_one_line(offline_cache, tmp_path):
    with pytest.raises(ModelUnavailable, match="not in the Hugging Face cache and HF_HUB_OFFLINE"):
        hub.snapshot("cai-test/missing")
    assert hub.hub_identity("cai-test/missing", fetch=False)[1] == {
        "model": "cai-test/missing", "revision": "main", "weights": "not downloaded"}
    assert not hub.is_hub_id(str(tmp_path))  # a local directory is never a hub id
