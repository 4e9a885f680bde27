"""`--push-to-hub` without a hub: what would be uploaded, the card it carries, and the token
handling, through huggingface_hub's own `upload_folder` up to the commit it would send."""

import pytest
from conftest import cai

from cai.errors import CaiError
from cai.publish import hub


@pytest.fixture
def commits(monkeypatch):
    """huggingface_hub's HfApi, stopped where it would reach the network: the repos it would
    create and the commits (each file's path in the repo) it would send, with their token."""
    from huggingface_hub import CommitInfo, HfApi
    sent = []

    def create_repo(self, repo_id, **kw):
        sent.append(("repo", repo_id, kw.get("repo_type"), kw.get("private"), self.token))

    def create_commit(self, repo_id, operations, **kw):
        sent.append(("commit", repo_id, kw.get("repo_type"), sorted(op.path_in_repo for op in operations),
                     kw.get("commit_message")))
        return CommitInfo(commit_url=f"https://huggingface.co/{repo_id}/commit/0", commit_message="",
                          commit_description="", oid="0")
    def validate_yaml(self, content, **kw):  # the Hub checks a card's front matter server-side
        sent.append(("card", content.splitlines()[0] if isinstance(content, str) else content))
    # with hf_xet installed upload_folder streams through its pipeline, which asks the Hub for
    # upload modes first; without it, it sends one create_commit, where this fixture stops it
    monkeypatch.setattr("huggingface_hub.hf_api.is_xet_available", lambda: False)
    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "_validate_yaml", validate_yaml)
    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    return sent


def test_export_push_to_hub_uploads_the_card_and_the_files_it_names(tmp_path, fake_backend,
                                                                  commits, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    assert cai(tmp_path / "r", "run", "--to", "blend", sets=["prompts.limit=4"])[0] == 0
    code, out, err = cai(tmp_path / "r", "export", "--push-to-hub", "me/cai-prefs", "--private",
                         sets=["prompts.limit=4"])
    assert code == 0, err
    card = (tmp_path / "r" / "dataset" / "README.md").read_text()
    files = ["README.md", "kto.jsonl", "prefs.jsonl", "prefs_ai.jsonl", "prefs_test.jsonl", "sft.jsonl"]
    assert all(f"path: {f}" in card for f in files[2:])  # the card's configs name every file sent
    assert commits[0] == ("repo", "me/cai-prefs", "dataset", True, "hf_test_token")
    assert commits[1] == ("card", "---")  # the card goes to the Hub's front-matter check
    kind, repo, repo_type, paths, message = commits[2]
    assert (kind, repo, repo_type, paths) == ("commit", "me/cai-prefs", "dataset", files)
    assert message.startswith("cai export: dataset ")
    assert "pushed 6 files to https://huggingface.co/me/cai-prefs/commit/0" in out
    assert "hf_test_token" not in out + err


def test_no_token_is_one_line_and_nothing_is_sent(tmp_path, fake_backend, commits, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no `hf auth login` file either
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    assert cai(tmp_path / "r", "run", "--to", "blend", sets=["prompts.limit=4"])[0] == 0
    code, _, err = cai(tmp_path / "r", "export", "--push-to-hub", "me/x", sets=["prompts.limit=4"])
    assert code == 2 and err.strip() == ("cai: error: --push-to-hub needs a Hugging Face token with "
                                         "write access: set HF_TOKEN or run `hf auth login`")
    assert commits == []


def test_a_model_upload_plan_leaves_hidden_files_out(tmp_path):
    model = tmp_path / "models" / "rm-1"
    model.mkdir(parents=True)
    for name in ("model.safetensors", "config.json", "README.md", "cai-model.json",
                 ".cai-fingerprint.json"):
        (model / name).write_text("x")
    (tmp_path / "metrics.json").write_text('{"reward_model": {"path": "%s"}}' % model)
    folder, kind, files = hub.upload_plan(tmp_path, "train-rm")
    assert (folder, kind) == (model, "model")
    assert files == ["README.md", "cai-model.json", "config.json", "model.safetensors"]
    with pytest.raises(CaiError, match="has no model from train-policy"):
        hub.upload_plan(tmp_path, "train-policy")
