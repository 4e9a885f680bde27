"""Up to the Hugging Face Hub: `cai export --push-to-hub ORG/NAME` uploads the dataset (its card,
whose `configs:` front matter names the splits, and the JSONL files it names), and
`cai train-sft|train-rm|train-policy --push-to-hub ORG/NAME` the model the stage trained (weights,
tokenizer, model card, cai-model.json), through `huggingface_hub` itself.

The token is the one `huggingface_hub` finds (HF_TOKEN, or `hf auth login`'s file); cai never
prints or stores it. What would be uploaded is known before anything is sent (`upload_plan`).
"""

import json
from pathlib import Path

from cai.errors import CaiError

DATASET_FILES = ["README.md", "*.jsonl"]  # the card and the files its configs name
MODEL_SKIP = [".*", ".*/**"]  # cai's fingerprint sidecar and other hidden files
MODEL_OF = {"train-sft": "sft", "train-rm": "reward_model", "train-policy": "policy"}


def upload_plan(run_dir, stage: str) -> tuple[Path, str, list[str]]:
    """(folder, repo type, the files that would be uploaded) for a stage's output."""
    from huggingface_hub.utils import filter_repo_objects
    run_dir = Path(run_dir)
    if stage == "export":
        folder, kind, allow, skip = run_dir / "dataset", "dataset", DATASET_FILES, None
    elif stage in MODEL_OF:
        folder, kind, allow, skip = _model_dir(run_dir, stage), "model", None, MODEL_SKIP
    else:
        raise CaiError(f"--push-to-hub: stage {stage} makes nothing to upload (export, train-sft, "
                       "train-rm and train-policy do)")
    if not folder.is_dir():
        raise CaiError(f"--push-to-hub: {folder} does not exist; run `cai {stage}` first")
    files = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    return folder, kind, sorted(filter_repo_objects(files, allow_patterns=allow, ignore_patterns=skip))


def push(run_dir, stage: str, repo_id: str, private: bool = False) -> str:
    """Create the repo if need be and upload the stage's output in one commit; returns its URL."""
    from huggingface_hub import HfApi, get_token
    folder, kind, files = upload_plan(run_dir, stage)
    token = get_token()
    if not token:
        raise CaiError("--push-to-hub needs a Hugging Face token with write access: set HF_TOKEN or "
                       "run `hf auth login`")
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type=kind, private=private, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, repo_type=kind, folder_path=folder,
                                 allow_patterns=DATASET_FILES if kind == "dataset" else None,
                                 ignore_patterns=MODEL_SKIP if kind == "model" else None,
                                 commit_message=f"cai {stage}: {_name(folder, kind)}")
    except Exception as exc:  # no network, a refused token, a repo of someone else's
        reason = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise CaiError(f"--push-to-hub {repo_id}: {reason}") from None
    return f"{len(files)} files to {getattr(info, 'commit_url', None) or repo_id}"


def _model_dir(run_dir: Path, stage: str) -> Path:
    metrics = run_dir / "metrics.json"
    path = (json.loads(metrics.read_text()).get(MODEL_OF[stage]) or {}).get("path") \
        if metrics.exists() else None
    if not path:
        raise CaiError(f"--push-to-hub: {run_dir} has no model from {stage}; run `cai {stage}` first")
    return Path(path)


def _name(folder: Path, kind: str) -> str:
    marker = folder / ".cai-hash"
    return f"dataset {marker.read_text()}" if kind == "dataset" and marker.exists() else folder.name
