"""The run config: every knob of a run, one pydantic model per stage plus RunConfig.

Precedence: defaults < YAML file (`--config FILE`) < `--set section.key=value` flags.
Each field's description is the only help text: `cai config --keys` and the README's
configuration reference are generated from it. Unknown keys fail, naming the key and the file.
"""

import difflib
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from cai.config.data import (
    BlendConfig,
    CalibrationConfig,
    CritiqueConfig,
    GenerateConfig,
    InputsConfig,
    LabelConfig,
    PairsConfig,
    PromptsConfig,
)
from cai.config.evaluate import EvaluateConfig
from cai.config.loops import IterationsConfig, RayConfig, ReviewConfig, TrackingConfig
from cai.config.models import JudgeConfig, ModelsConfig, OpenAIConfig, VLLMConfig
from cai.config.train import (
    TRAIN_KNOBS,
    TRAIN_STAGES,
    Section,
    SharedTrainConfig,
    TrainPolicyConfig,
    TrainRMConfig,
    TrainSFTConfig,
)
from cai.constitution.limits import MAX_DEPTH, too_deep
from cai.errors import ConfigError
from cai.hashing import content_hash

INTERNAL_ITERATION_KEYS = ("current", "root")  # set by cai for each iteration, never by users















class RunConfig(Section):
    run_dir: str = Field("outputs/default", description="where the store, exports, models and report go")
    constitution: str = Field("principles.yaml", description="the constitution file")
    seed: int = Field(0, ge=0, le=2**32 - 1, description="seed for sampling, principle assignment and splits")
    models: ModelsConfig = ModelsConfig()
    openai: OpenAIConfig = OpenAIConfig()
    vllm: VLLMConfig = VLLMConfig()
    judge: JudgeConfig = JudgeConfig()
    inputs: InputsConfig = InputsConfig()
    prompts: PromptsConfig = PromptsConfig()
    generate: GenerateConfig = GenerateConfig()
    critique: CritiqueConfig = CritiqueConfig()
    label: LabelConfig = LabelConfig()
    calibration: CalibrationConfig = CalibrationConfig()
    pairs: PairsConfig = PairsConfig()
    blend: BlendConfig = BlendConfig()
    train: SharedTrainConfig = SharedTrainConfig()
    train_sft: TrainSFTConfig = TrainSFTConfig()
    train_rm: TrainRMConfig = TrainRMConfig()
    train_policy: TrainPolicyConfig = TrainPolicyConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    review: ReviewConfig = ReviewConfig()
    iterations: IterationsConfig = IterationsConfig()
    engine: Literal["local", "ray"] = Field("local", description=(
        "who answers the model calls a stage needs: this process (local) or a pool of Ray "
        "actors (ray; extra `cai[ray]`); the dataset is the same either way"))
    ray: RayConfig = RayConfig()
    tracking: TrackingConfig = TrackingConfig()

    @model_validator(mode="before")
    @classmethod
    def _shared_training(cls, data):
        """`train.<knob>` fills every training stage's knob that its own section leaves unset."""
        shared = data.get("train") if isinstance(data, dict) else None
        if not isinstance(shared, dict):
            return data
        given = {k: v for k, v in shared.items() if k in TRAIN_KNOBS and v is not None}
        stages = {s: _over(given, data[s]) if isinstance(data.get(s), dict) else data.get(s, given)
                  for s in TRAIN_STAGES}
        return {**data, **stages}

    def settable(self) -> dict:
        """The config as a user may write it (`cai config`, a run's config.yaml): without the
        keys cai sets for itself, so the dump loads again."""
        return self.model_dump(exclude={"iterations": set(INTERNAL_ITERATION_KEYS)})

    def fingerprint(self, *sections: str) -> str:
        """Hash of some sections (all if none): what a stage's cached outputs depend on."""
        data = self.model_dump()
        return content_hash({s: data[s] for s in sections} if sections else data)


def _over(shared: dict, own: dict) -> dict:
    """A training stage's section: its own keys over `train.*`; the `trainer` pass-through merges
    key by key (a stage adds to or changes what `train.trainer` gives every stage)."""
    out = {**shared, **own}
    if isinstance(shared.get("trainer"), dict) and isinstance(own.get("trainer"), dict):
        out["trainer"] = {**shared["trainer"], **own["trainer"]}
    return out


def load_config(path=None, overrides=()) -> RunConfig:
    data, where = {}, "defaults"
    if path:
        where = str(path)
        data = (_read_yaml(Path(path).read_bytes, where) if _readable(path) else None) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: a run config must be a mapping of sections")
    for item in overrides:
        _apply_override(data, item)
    try:
        return RunConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_explain(exc, where)) from None


def _readable(path) -> bool:
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{path}: config file not found")
    if not p.is_file():
        raise ConfigError(f"{path}: is not a file; expected a run config YAML")
    return True


def _read_yaml(read, where: str):
    """YAML from `read()` (bytes or text), or one line naming `where` and the line at fault."""
    try:
        raw = read()
        text = raw.decode("utf-8-sig") if isinstance(raw, bytes) else raw
        return yaml.safe_load(text)
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: not UTF-8 text (bad byte at offset {exc.start})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}{line}: not valid YAML ({problem})") from None
    except RecursionError:
        line = too_deep(text)
        raise ConfigError(f"{where}{f':{line}' if line else ''}: nested more than {MAX_DEPTH} "
                          "levels deep") from None


def _apply_override(data: dict, item: str):
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. generate.samples=4")
    node = data
    *parents, leaf = key.strip().split(".")
    for part in parents:
        short = _shorthand(part) if node is data and isinstance(node.get(part), str) else None
        if short:  # `tracking: mlflow`, then a key under it: the key joins the section
            node[part] = {short: node[part]}
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {item!r}: '{part}' is not a section")
    node[leaf] = _read_yaml(lambda: value, f"--set {key.strip()}") if value.strip() else None


def _shorthand(section: str) -> str | None:
    """The key a section's plain value stands for (its class's SHORTHAND), if it has one."""
    field = RunConfig.model_fields.get(section)
    return getattr(field.annotation, "SHORTHAND", None) if field else None


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




