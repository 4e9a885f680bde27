"""The run config: every knob of a run, one pydantic model per stage plus RunConfig.

Precedence: defaults < YAML file (`--config FILE`) < `--set section.key=value` flags.
Each field's description is the only help text: `cai config --help-keys` and the README's
configuration reference are generated from it. Unknown keys fail, naming the key and the file.
"""

import difflib
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError
from .hashing import content_hash

EMBEDDED = "transformers:smollm2-135m"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelsConfig(Section):
    policy: str = Field(EMBEDDED, description="policy model spec '<backend>:<model>' (answers prompts; base of training)")
    judge: str = Field(EMBEDDED, description="judge model spec (critiques, revisions, comparisons)")
    device: str = Field("auto", description="'auto' (CUDA if present), 'cpu' or 'cuda[:N]'")
    dtype: str = Field("auto", description="'auto' (float32 on CPU, bfloat16 on CUDA), 'float32', 'bfloat16', 'float16'")
    batch_size: int = Field(16, ge=1, description="requests per backend batch")
    threads: int = Field(0, ge=0, description="torch CPU threads; 0 = one per available core")
    retry_failed: bool = Field(False, description="call again where a stored call failed (failures are kept, with their reason, and not retried by accident)")


class PromptsConfig(Section):
    source: str = Field("builtin:default", description="'builtin:default' (red-team + helpful prompts shipped with cai), or a JSONL/CSV file or a `datasets` directory")
    field: str = Field("prompt", description="column holding the prompt text")
    id_field: str = Field("id", description="column holding a stable prompt id (hash of the text if absent)")
    limit: int = Field(12, ge=1, description="use at most this many prompts (first N)")


class GenerateConfig(Section):
    samples: int = Field(2, ge=1, description="responses sampled per prompt")
    max_new_tokens: int = Field(80, ge=1, description="token budget of each response")
    temperature: float = Field(0.8, ge=0, description="sampling temperature (0 = greedy)")
    top_p: float = Field(0.95, gt=0, le=1, description="nucleus sampling mass")


class CritiqueConfig(Section):
    rounds: int = Field(2, ge=1, description="critique -> revision rounds per response")
    tags: list[str] | None = Field(None, description="only principles with one of these tags (null = all)")
    critique_max_new_tokens: int = Field(48, ge=1, description="token budget of a critique")
    revision_max_new_tokens: int = Field(80, ge=1, description="token budget of a revision")
    temperature: float = Field(0.0, ge=0, description="judge sampling temperature (0 = greedy)")
    violation_threshold: float = Field(0.5, ge=0, le=1, description="P(Yes) of 'does it violate?' above which a response is revised")
    calibrate: bool = Field(True, description="divide the judge's Yes/No odds by its odds on a content-free input (contextual calibration), so a judge that always leans Yes does not flag everything")


class PairsConfig(Section):
    min_change: float = Field(0.2, ge=0, le=1, description="a revision must differ from the original by at least this share (1 - difflib similarity) to make a pair")


class BlendConfig(Section):
    human_source: str = Field("builtin:calibration", description="human calibration slice: JSONL of prompt/chosen/rejected ('builtin:calibration' = 300 hh-rlhf harmlessness pairs)")
    human_share: float = Field(0.3, ge=0, lt=1, description="share of human pairs in the blended training set")
    min_human: int = Field(16, ge=0, description="human pairs used at least, so training has data even when the judge made few pairs")
    heldout: int = Field(32, ge=0, description="human pairs held out of training: judge agreement and reward-model accuracy are measured on them")
    agreement: bool = Field(True, description="measure judge-human agreement on the held-out pairs (2 judge calls per pair)")
    tags: list[str] | None = Field(["harmlessness"], description="principles whose comparison questions the judge answers on human pairs")


class TrainConfig(Section):
    enabled: bool = Field(True, description="run this training stage")
    epochs: float = Field(1.0, gt=0, description="passes over the training pairs")
    batch_size: int = Field(4, ge=1, description="per-device batch size")
    grad_accum: int = Field(1, ge=1, description="gradient accumulation steps")
    learning_rate: float = Field(5e-5, gt=0, description="peak learning rate")
    max_length: int = Field(256, ge=16, description="truncate prompt+response to this many tokens")
    lora: bool = Field(False, description="train LoRA adapters instead of all weights")
    lora_r: int = Field(16, ge=1, description="LoRA rank")
    max_steps: int = Field(-1, description="stop after this many steps (-1 = epochs decide)")


class TrainRMConfig(TrainConfig):
    learning_rate: float = Field(5e-5, gt=0, description="peak learning rate")


class TrainPolicyConfig(TrainConfig):
    method: str = Field("dpo", description="preference method: 'dpo' (more in later releases)")
    beta: float = Field(0.1, gt=0, description="DPO beta: strength of the KL anchor to the reference")
    batch_size: int = Field(2, ge=1, description="per-device batch size")
    learning_rate: float = Field(5e-5, gt=0, description="peak learning rate")
    lora: bool = Field(True, description="train LoRA adapters (merged into the saved model)")


class EvaluateConfig(Section):
    harmful: str = Field("builtin:harmful", description="prompts that should be refused (JSONL/CSV/datasets dir)")
    safe: str = Field("builtin:safe", description="prompts that look unsafe but should be answered")
    limit: int = Field(12, ge=1, description="prompts used from each set (a seeded sample)")
    max_new_tokens: int = Field(48, ge=1, description="token budget of each evaluated reply")


class RunConfig(Section):
    run_dir: str = Field("outputs/default", description="where the store, exports, models and report go")
    constitution: str = Field("principles.yaml", description="the constitution file")
    seed: int = Field(0, description="seed for sampling, principle assignment and splits")
    models: ModelsConfig = ModelsConfig()
    prompts: PromptsConfig = PromptsConfig()
    generate: GenerateConfig = GenerateConfig()
    critique: CritiqueConfig = CritiqueConfig()
    pairs: PairsConfig = PairsConfig()
    blend: BlendConfig = BlendConfig()
    train_rm: TrainRMConfig = TrainRMConfig()
    train_policy: TrainPolicyConfig = TrainPolicyConfig()
    evaluate: EvaluateConfig = EvaluateConfig()

    def fingerprint(self, *sections: str) -> str:
        """Hash of some sections (all if none): what a stage's cached outputs depend on."""
        data = self.model_dump()
        return content_hash({s: data[s] for s in sections} if sections else data)


def load_config(path=None, overrides=()) -> RunConfig:
    data, where = {}, "defaults"
    if path:
        where = str(path)
        try:
            data = yaml.safe_load(Path(path).read_text()) or {}
        except FileNotFoundError:
            raise ConfigError(f"{path}: config file not found") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark else ""
            raise ConfigError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a run config must be a mapping of sections")
    for item in overrides:
        _apply_override(data, item)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, where)) from None


def _apply_override(data: dict, item: str):
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. generate.samples=4")
    node = data
    *parents, leaf = key.strip().split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {item!r}: '{part}' is not a section")
    node[leaf] = yaml.safe_load(value)


def _explain(exc: ValidationError, where: str) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err["loc"])
    if err["type"] == "extra_forbidden":
        parent = RunConfig
        for part in err["loc"][:-1]:
            parent = parent.model_fields[part].annotation
        close = difflib.get_close_matches(str(err["loc"][-1]), list(parent.model_fields), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"{where}: unknown config key '{loc}'{hint}"
    return f"{where}: config key '{loc}': {err['msg']} (got {err.get('input')!r})"


def help_rows():
    """(key, default, description) for every config key: the one source of help text."""
    def walk(model, prefix):
        for name, f in model.model_fields.items():
            ann = f.annotation
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                yield from walk(ann, f"{prefix}{name}.")
            else:
                yield f"{prefix}{name}", f.default, f.description or ""
    return list(walk(RunConfig, ""))
