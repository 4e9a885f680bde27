"""The machinery of the invalidation proof (tests/test_invalidation.py, bench/invalidation.py).

A *case* changes one input of a run: a config key (every key of RunConfig, enumerated from the
pydantic models), the content of a file the config names, the review labels. For each case the
data stages run from scratch in a fresh run directory with the scripted backends, and each
stage's outputs (manifest, the records it lists, its stats, the exported files) and input
fingerprint are compared with a baseline run's:
- outputs changed and fingerprint unchanged: **stale** (a rerun would serve the old result);
- fingerprint changed and outputs unchanged: **over-invalidation** (a rerun recomputes for
  nothing; counted, kept small).
"""

import json
import re
import typing
from pathlib import Path

from conftest import ROOT, small_config
from pydantic import BaseModel, TypeAdapter, ValidationError

from cai.config.run import RunConfig
from cai.inputs.checks import preflight
from cai.review.items import item_id
from cai.stages import DATA_STAGES, STAGES
from cai.stages.context import RunContext
from cai.stages.reads import config_value
from cai.stages.reuse import run_stage
from cai.store.core import ReadOnlyStore, Store

# Keys whose change cannot be run as a case, and why (everything else must have a case).
VARIED = {"run_dir": "every case runs in a run directory of its own",
          # where calls run, not what they answer: tests/test_engines.py holds the dataset
          # byte-identical across engines (a case here would start a Ray cluster per key)
          "engine": "tests/test_engines.py", "ray.address": "tests/test_engines.py",
          "ray.actors": "tests/test_engines.py", "ray.num_cpus": "tests/test_engines.py",
          "ray.num_gpus": "tests/test_engines.py",
          # where a run's figures are sent once it is done, not what it makes
          "tracking.to": "tests/test_tracking.py", "tracking.project": "tests/test_tracking.py",
          "tracking.uri": "tests/test_tracking.py"}


def config_keys(model=RunConfig, prefix="") -> list[tuple[str, object]]:
    """(dotted key, field) of every leaf of the run config: a new key is enumerated here."""
    out = []
    for name, field in model.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            out += config_keys(ann, f"{prefix}{name}.")
        else:
            out.append((f"{prefix}{name}", field))
    return out


def base_overrides(files: dict) -> dict:
    """The baseline: small_config on data files of our own, so each can be edited in place."""
    return {"prompts.source": str(files["prompts"]), "prompts.limit": 5, "critique.rounds": 2,
            "calibration.source": str(files["calibration"]), "calibration.heldout": 3,
            "calibration.limit": 12, "constitution": str(files["constitution"]),
            **{f"evaluate.{k}": str(files[k]) for k in ("harmful", "safe", "redteam")}}


def make_files(tmp: Path) -> dict:
    """The data files of the baseline (prompts with spare columns, calibration pairs, three
    evaluation sets, a copy of the constitution) and the alternatives the cases switch to."""
    tmp.mkdir(parents=True, exist_ok=True)
    rows = [{"id": f"p{i}", "alt_id": f"q{i}", "prompt": f"How do I fix bicycle part {i}?",
             "text": f"How do I bake bread number {i}?", "kind": "benign"} for i in range(8)]
    files = {k: tmp / f"{k}.jsonl" for k in ("prompts", "prompts2", "calibration", "harmful",
                                             "safe", "redteam", "evaluate")}
    files["constitution"] = tmp / "principles.yaml"
    files["constitution2"] = tmp / "principles-edited.yaml"
    _jsonl(files["prompts"], rows)
    _jsonl(files["prompts2"], [{**r, "prompt": r["prompt"].replace("bicycle", "car")} for r in rows])
    _jsonl(files["calibration"], [{"id": f"h{i}", "prompt": f"Is it ok to borrow item {i}?",
                                   "chosen": f"Ask the owner of item {i} first.",
                                   "rejected": f"Just take item {i}."} for i in range(14)])
    _jsonl(files["harmful"], [{"id": "h0", "prompt": "How do I make a weapon at home?"}])
    _jsonl(files["safe"], [{"id": "s0", "prompt": "How do I kill weeds in my garden?"}])
    _jsonl(files["redteam"], [{"id": "r0", "prompt": "Tell me my neighbour's address."}])
    # An evaluation set holding a training prompt: generate must drop it.
    _jsonl(files["evaluate"], [{"id": "e0", "prompt": rows[1]["prompt"]},
                               {"id": "e1", "prompt": "How do I pick a lock?"}])
    text = (ROOT / "principles.yaml").read_text()
    files["constitution"].write_text(text)
    files["constitution2"].write_text(edit_one_principle(text))
    return files


def edit_one_principle(text: str) -> str:
    """The constitution with the first principle's critique question reworded."""
    import yaml
    data = yaml.safe_load(text)
    data["principles"][0]["critique"] = data["principles"][0]["critique"].rstrip() + " Be specific."
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def _jsonl(path: Path, rows: list[dict]):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def explicit_changes(files: dict, baseline_dir: Path) -> dict:
    """Changes of keys whose type gives no obvious other value (strings, lists, optionals)."""
    train = {"enabled": False, "epochs": 2.0, "batch_size": 3, "grad_accum": 2,
             "learning_rate": 1e-3, "max_length": 128, "lora": False, "lora_r": 8, "max_steps": 3,
             "report_to": "none", "shuffle": False, "group_by_length": False, "bf16": False,
             "gradient_checkpointing": False, "save_steps": 5, "save_total_limit": 3,
             "trainer": {"weight_decay": 0.01}}
    out = {f"train.{k}": {f"train.{k}": v} for k, v in train.items()}
    for stage in ("train_sft", "train_rm", "train_policy"):
        out[f"{stage}.report_to"] = {f"{stage}.report_to": "tensorboard"}
        out[f"{stage}.bf16"] = {f"{stage}.bf16": False}
        out[f"{stage}.gradient_checkpointing"] = {f"{stage}.gradient_checkpointing": False}
        out[f"{stage}.save_total_limit"] = {f"{stage}.save_total_limit": 5}
        out[f"{stage}.trainer"] = {f"{stage}.trainer": {"max_grad_norm": 0.5}}
    url = "http://127.0.0.1:9/v1"
    out.update({
        "constitution": {"constitution": str(files["constitution2"])},
        "models.policy": {"models.policy": "fake:policy2"},
        "models.judge": {"models.judge": "fake:judge2"},
        "models.device": {"models.device": "cpu"},
        "models.shared_cache": {"models.shared_cache": str(files["prompts"].parent / "calls.sqlite")},
        "openai.base_urls": {"openai.base_urls": [url]},
        "openai.model_base_urls": {"openai.model_base_urls": {"judge": [url]}},
        "openai.api_key_env": {"openai.api_key_env": "OTHER_KEY"},
        "openai.weights_id": {"openai.weights_id": "checkpoint-2"},
        "openai.control_tokens": {"openai.control_tokens": ["<ctl>"]},
        "vllm.max_model_len": {"vllm.max_model_len": 1024},
        "vllm.dtype": {"vllm.dtype": "bfloat16"},
        "prompts.source": {"prompts.source": str(files["prompts2"])},
        "prompts.field": {"prompts.field": "text"},
        "prompts.id_field": {"prompts.id_field": "alt_id"},
        "critique.tags": {"critique.tags": ["harmlessness"]},
        "label.compare": {"label.compare": ["revision"]},
        "label.tags": {"label.tags": None},
        "label.cot_clamp": {"label.cot_clamp": [0.3, 0.7], "label.cot": True},
        "calibration.source": {"calibration.source": "builtin:calibration"},
        "calibration.limit": {"calibration.limit": 10},
        "calibration.judge_pairs": {"calibration.judge_pairs": 3},
        "calibration.min_agreement": {"calibration.min_agreement": 0.5},
        "pairs.kinds": {"pairs.kinds": ["comparison"]},
        "blend.weights": {"blend.weights": {"critique-revision": 0.5, "comparison": 1.0}},
        "train_policy.reward": {"train_policy.reward": ["rm"]},
        "train_policy.reference": {"train_policy.reference": "base"},
        "train_policy.loss_type": {"train_policy.loss_type": ["hinge"]},
        "train_policy.label_smoothing": {"train_policy.label_smoothing": 0.1},
        "evaluate.harmful": {"evaluate.harmful": str(files["evaluate"])},
        "evaluate.safe": {"evaluate.safe": str(files["evaluate"])},
        "evaluate.redteam": {"evaluate.redteam": str(files["evaluate"])},
        "evaluate.unsafe": {"evaluate.unsafe": str(files["evaluate"])},
        "evaluate.refusal_labels": {"evaluate.refusal_labels": str(files["evaluate"])},
        "evaluate.detectors": {"evaluate.detectors": ["string"]},
        "train_rm.base": {"train_rm.base": "transformers:/elsewhere"},
        "review.adjudicators": {"review.adjudicators": ["ann"]},
        "iterations.max_kl": {"iterations.max_kl": 1.0},
        # Iteration 2 of the baseline: blend carries iteration 1's pairs (decayed).
        "iterations.current": {"iterations.current": 2, "iterations.root": str(baseline_dir)},
        "iterations.root": {"iterations.root": str(baseline_dir / "elsewhere")},
    })
    return out


def automatic_change(key: str, field, value):
    """Another valid value of a bool, number or choice field; None where there is none."""
    ann = field.annotation
    if typing.get_origin(ann) is typing.Literal:
        return next(x for x in typing.get_args(ann) if x != value)
    if ann is bool:
        return not value
    candidates = {int: (value + 1, value - 1), float: (value / 2, value * 2) if value else (0.1,)}
    check = TypeAdapter(typing.Annotated[(ann, *field.metadata)] if field.metadata else ann)
    for new in candidates.get(ann, ()):
        try:
            return check.validate_python(new)
        except ValidationError:
            continue
    return None


def cases(files: dict, baseline_dir: Path) -> dict:
    """name -> config overrides, one case per config key (beyond VARIED)."""
    base = small_config(baseline_dir, **base_overrides(files))
    explicit = explicit_changes(files, baseline_dir)
    out = {}
    for key, field in config_keys():
        if key in VARIED:
            continue
        if key in explicit:
            out[key] = explicit[key]
            continue
        new = automatic_change(key, field, config_value(base, key))
        if new is None:
            raise AssertionError(f"config key {key} has no change to test: add one to "
                                 "explicit_changes (tests/invalidation.py)")
        out[key] = {key: new}
    return out


SET_BY_CAI = ("iterations.current", "iterations.root")


def run(run_dir: Path, files: dict, changes: dict, before=None) -> dict:
    """The data stages from scratch with `changes`; -> {stage: (fingerprint, outputs)}.
    `before(run_dir)` prepares the run directory (e.g. review labels) first."""
    run_dir.mkdir(parents=True, exist_ok=True)
    if before:
        before(run_dir)
    # keys cai sets for itself (no config may) are set the way cai sets them
    internal = {k.split(".")[1]: v for k, v in changes.items() if k in SET_BY_CAI}
    overrides = {**base_overrides(files), **{k: _yaml(v) for k, v in changes.items()
                                            if k not in SET_BY_CAI}}
    config = small_config(run_dir, **overrides)
    if internal:
        config = config.model_copy(update={"iterations": config.iterations.model_copy(
            update=internal)})
    stats = run_data_stages(config)
    out = {}
    with ReadOnlyStore(run_dir) as store:
        for stage in DATA_STAGES:
            manifest = store.get_manifest(stage)
            reuse = store.manifest_reuse(stage) or {}
            records = store.get_records(sorted(set(manifest["ids"])))
            s = stats[stage]
            outputs = {"manifest": manifest, "records": records,
                       "stats": {"dropped": s.dropped, "metrics": s.metrics, "warnings": s.warnings}}
            if stage == "export":
                outputs["files"] = {p.name: p.read_text() for p in sorted((run_dir / "dataset").glob("*"))
                                    if p.is_file()}
            text = json.dumps(outputs, sort_keys=True, default=str).replace(str(run_dir), "<run>")
            out[stage] = (reuse.get("inputs"), text)
    return out


def run_data_stages(config) -> dict:
    """The data stages as `cai run --to export` walks them (stage reuse included); -> stats."""
    preflight(config)
    ctx = RunContext(config)
    try:
        ctx.store.start_run(config.fingerprint(), ctx.constitution.content_version)
        return {name: run_stage(ctx, name, STAGES[name]) for name in DATA_STAGES}
    finally:
        ctx.close()


def _yaml(value) -> str:
    return json.dumps(value)


# Each data file the baseline reads, edited in place (same path, new content).
EDITS = {"prompts": lambda t: t.replace("bicycle part 2", "tandem part 2"),
         "calibration": lambda t: t.replace("Just take item 3.", "Take item 3 and run."),
         "harmful": lambda t: t + json.dumps({"id": "x", "prompt": "How do I fix bicycle part 0?"})
         + "\n",
         "safe": lambda t: t.replace("garden", "balcony"),
         "redteam": lambda t: t.replace("neighbour", "landlord"),
         "constitution": edit_one_principle}


def prove(tmp: Path) -> dict:
    """Every case against one baseline: name -> (stale stages, over-invalidated stages)."""
    files = make_files(tmp / "files")
    baseline_dir = tmp / "base"
    baseline = run(baseline_dir, files, {})
    results = {}
    for name, changes in cases(files, baseline_dir).items():
        results[name] = compare(baseline, run(tmp / "cases" / _slug(name), files, changes))
    for key, edit in EDITS.items():
        name = f"file {key} edited in place"
        original = files[key].read_text()
        try:
            changed = run(tmp / "cases" / _slug(name), files, {}, _in_place(files[key], edit))
        finally:
            files[key].write_text(original)
        results[name] = compare(baseline, changed)
    results["review labels"] = compare(baseline, run(tmp / "cases" / "review", files, {},
                                                     _review_labels))
    return results


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower())


def _in_place(path, edit):
    def before(_run_dir):
        path.write_text(edit(path.read_text()))
    return before


def _review_labels(run_dir):
    """Three annotators decide one pair in `cai review`: a human label the next run reads."""
    with Store(run_dir, lock=False) as store:
        item = item_id("label", "Is it fine to read a diary?", "Ask first.", "Read it.")
        store.put_review_items([(item, "label", {"prompt": "Is it fine to read a diary?",
                                                 "first": "Ask first.", "second": "Read it."})])
        for who in ("ann", "bo", "cy"):
            store.put_review_label(item, who, "annotator", "first", "")


def compare(baseline: dict, changed: dict) -> tuple[list[str], list[str]]:
    """(stale stages, over-invalidated stages) of a case against the baseline."""
    stale, over = [], []
    for stage in DATA_STAGES:
        (f0, o0), (f1, o1) = baseline[stage], changed[stage]
        if o0 != o1 and f1 is not None and f0 == f1:
            stale.append(stage)
        elif o0 == o1 and f0 != f1:
            over.append(stage)
    return stale, over
