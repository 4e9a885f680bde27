"""The run config: every knob of a run, one pydantic model per stage plus RunConfig.

Precedence: defaults < YAML file (`--config FILE`) < `--set section.key=value` flags.
Each field's description is the only help text: `cai config --keys` and the README's
configuration reference are generated from it. Unknown keys fail, naming the key and the file.
"""

import difflib
from pathlib import Path

from typing import Annotated, Literal

import yaml
from pydantic import (BaseModel, ConfigDict, Field, ValidationError, create_model,
                      field_validator, model_validator)

from .errors import ConfigError
from .hashing import content_hash

EMBEDDED = "transformers:smollm2-135m"


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ModelsConfig(Section):
    policy: str = Field(EMBEDDED, description=(
        "policy model spec '<backend>:<model>' (answers prompts; base of training)"))
    judge: str = Field(EMBEDDED, description="judge model spec (critiques, revisions, comparisons)")
    device: str = Field("auto", description="'auto' (CUDA if present), 'cpu' or 'cuda[:N]'")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description=(
        "'auto' (float32 on CPU, bfloat16 on CUDA), 'float32', 'bfloat16', 'float16'"))
    batch_size: int = Field(16, ge=1, description="requests per backend batch")
    threads: int = Field(0, ge=0, description="torch CPU threads; 0 = one per available core")
    retry_failed: bool = Field(False, description=(
        "call again where a stored call failed (failures are kept, with their reason, and not retried "
        "by accident)"))


class OpenAIConfig(Section):
    base_urls: list[str] = Field(["http://127.0.0.1:8000/v1"], description=(
        "OpenAI-compatible endpoints for 'openai:<model>' specs; several are used round-robin (e.g. one"
        " `vllm serve` per GPU)"))
    model_base_urls: dict[str, list[str]] = Field({}, description=(
        "per-model endpoints, overriding base_urls (e.g. policy and judge on different servers)"))
    api_key_env: str = Field("OPENAI_API_KEY", description=(
        "name of the environment variable holding the API key (the key itself is never stored or "
        "logged)"))
    concurrency: int = Field(16, ge=1, description="requests in flight at once")
    timeout: float = Field(120.0, gt=0, description="seconds before a request is abandoned and retried")
    max_retries: int = Field(6, ge=0, description=(
        "retries of a request on 429, 5xx, connection errors, timeouts and malformed responses "
        "(exponential backoff with jitter, honouring Retry-After)"))
    backoff: float = Field(1.0, gt=0, description=(
        "first retry waits up to this many seconds; doubles each time"))
    max_backoff: float = Field(60.0, gt=0, description="longest wait between retries")
    logprobs: bool = Field(True, description=(
        "the server returns top_logprobs (OpenAI, vLLM, llama.cpp do); false makes the judge vote "
        "(judge.scoring auto)"))
    top_logprobs: int = Field(20, ge=1, le=20, description=(
        "log-probabilities asked per position when scoring choices"))
    structured: bool = Field(False, description=(
        "ask for JSON-schema structured output (response_format) for judge texts where the server "
        "supports it; otherwise answers are parsed and retried"))
    weights_id: str = Field("", description=(
        "optional version tag of the served weights, part of the cache key (e.g. a checkpoint hash): "
        "change it when the server's model changes under the same name"))
    control_tokens: list[str] = Field([], description=(
        "the served model's control strings beyond the common families cai breaks in prompts and "
        "replies anyway (`<|...|>`, `[INST]`, `<s>`, `<start_of_turn>`...)"))


class VLLMConfig(Section):
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs one model is split across (vLLM offline)")
    data_parallel_size: int = Field(1, ge=1, description="model replicas (vLLM offline)")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="share of GPU memory vLLM may take")
    max_model_len: int | None = Field(None, ge=1, description="context length (null = the model's)")
    dtype: str = Field("auto", description="vLLM dtype ('auto', 'bfloat16', 'float16')")
    prefix_caching: bool = Field(True, description=(
        "reuse the KV cache of shared prefixes (every judge prompt starts with the constitution "
        "preamble)"))


class JudgeConfig(Section):
    scoring: Literal["auto", "logprobs", "vote"] = Field("auto", description=(
        "how the judge's multiple-choice answers (verdicts, comparisons) become probabilities: "
        "'logprobs' (next-token log-probabilities of the choices), 'vote' (majority over `judge.votes` "
        "sampled answers, for backends without log-probabilities), 'auto' (logprobs where the backend "
        "has them)"))
    votes: int = Field(5, ge=1, description="answers sampled per question when scoring by vote")
    vote_temperature: float = Field(0.8, gt=0, description="sampling temperature of voted answers")
    parse_retries: int = Field(2, ge=0, description=(
        "a judge answer that does not parse (empty or looping critique, no clear choice) is asked again"
        " this many times, then recorded as a failure"))


class PromptsConfig(Section):
    source: str = Field("builtin:default", description=(
        "'builtin:default' (the human slice's training prompts, red-team openers, mixed 3:1 with "
        "cai's helpful and safe-but-sensitive prompts; never an evaluation prompt), or a JSONL/CSV "
        "file or a `datasets` directory (an optional `kind` column says 'red-team' or 'benign')"))
    field: str = Field("prompt", description="column holding the prompt text")
    id_field: str = Field("id", description=(
        "column holding a stable prompt id (hash of the text if absent)"))
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
    violation_threshold: float = Field(0.5, ge=0, le=1, description=(
        "P(Yes) of 'does it violate?' above which a response is revised"))
    calibrate: bool = Field(True, description=(
        "divide the judge's Yes/No odds by its odds on a content-free input (contextual calibration), "
        "so a judge that always leans Yes does not flag everything"))


class LabelConfig(Section):
    enabled: bool = Field(True, description=(
        "compare candidate responses of each prompt with the judge (RL-CAI AI feedback)"))
    compare: list[Literal["samples", "revision"]] = Field(["samples", "revision"], description=(
        "candidate pairs: 'samples' (two policy samples of one prompt), 'revision' (a response and its "
        "final revision)"))
    max_comparisons_per_prompt: int = Field(4, ge=1, description=(
        "comparisons per prompt at most (a seeded choice among the candidate pairs)"))
    ensemble: int = Field(3, ge=1, description=(
        "principles per comparison (K): each answers its comparison question in both orders; the label "
        "is their mean"))
    tags: list[str] | None = Field(["harmlessness"], description=(
        "principles whose comparison questions are asked (null = all)"))
    average: Literal["logit", "probability"] = Field("logit", description=(
        "how the two answer orders combine: 'logit' (mean log-odds: a constant lean towards one "
        "position cancels exactly) or 'probability' (mean probability: a strong lean squashes the label"
        " towards 0.5)"))
    cot: bool = Field(False, description=(
        "chain of thought: the judge reasons first, then its choice is scored; probabilities are "
        "clamped to `label.cot_clamp` (CoT answers are overconfident)"))
    cot_max_new_tokens: int = Field(96, ge=1, description="token budget of the reasoning")
    cot_clamp: tuple[float, float] = Field((0.4, 0.6), description=(
        "[low, high] band CoT probabilities are clamped to (the CAI paper uses 40-60 %)"))

    @field_validator("cot_clamp")
    @classmethod
    def _band(cls, v):
        if not 0 <= v[0] <= 0.5 <= v[1] <= 1:
            raise ValueError("must be [low, high] with 0 <= low <= 0.5 <= high <= 1")
        return v


class CalibrationConfig(Section):
    source: str = Field("builtin:calibration", description=(
        "human calibration slice: JSONL of prompt/chosen/rejected ('builtin:calibration' = 300 hh-rlhf "
        "harmlessness pairs)"))
    limit: int | None = Field(None, ge=1, description=(
        "use the first N human pairs of the source (null = all)"))
    ensemble: int = Field(1, ge=1, description=(
        "principles per human pair the judge labels (comparison questions from `label.tags`)"))
    heldout: int = Field(32, ge=0, description=(
        "human pairs held out of training (reward-model accuracy is measured on them); prompts of "
        "held-out pairs never enter training"))
    folds: int = Field(5, ge=2, description=(
        "folds the judge's calibration is cross-fitted in: each human pair's calibrated label "
        "comes from a map fit without it, so agreement and trust are measured on held-out pairs"))
    shrinkage: float = Field(20.0, ge=0, description=(
        "human pairs at which a principle's own calibration map and the global one weigh the "
        "same (a principle with n pairs gets n / (n + shrinkage) of its own fit)"))
    use_trust: bool = Field(True, description=(
        "weigh every AI pair by the trust its principles earned on the human slice times its "
        "calibrated confidence (false: raw judge probabilities, every AI pair weighs 1)"))
    min_agreement: float | None = Field(None, ge=0, le=1, description=(
        "calibrated held-out judge-human accuracy below which training does not start (null = "
        "no check)"))
    on_low_agreement: Literal["stop", "warn"] = Field("stop", description=(
        "below `min_agreement`: 'stop' before training, or 'warn' and train"))


class PairsConfig(Section):
    kinds: list[Literal["critique-revision", "comparison"]] = Field(
        ["critique-revision", "comparison"], description=(
        "pair sources: 'critique-revision' (final revision ≻ original) and 'comparison' (the judge's "
        "labels)"))
    min_margin: float = Field(0.05, ge=0, le=1, description=(
        "a comparison makes a pair when its margin |2·P(a ≻ b) − 1| exceeds this"))
    min_change: float = Field(0.2, ge=0, le=1, description=(
        "a revision must differ from the original by at least this share (1 - difflib similarity) to "
        "make a pair"))


class BlendConfig(Section):
    human_weight: float = Field(1.0, ge=0, description=(
        "weight of the human training pairs (all of them are used): 0.5 keeps a seeded half, 2 "
        "uses each twice"))
    weights: dict[Literal["critique-revision", "comparison"], float] = Field(
        {"critique-revision": 1.0, "comparison": 1.0}, description=(
        "per-source factor on AI pairs' weights (each pair's weight is its trust × calibrated "
        "confidence; a pair of weight w is used floor(w) times, and once more with probability "
        "frac(w), seeded)"))
    max_pairs_per_prompt: int = Field(2, ge=1, description=(
        "AI pairs per prompt at most (highest weight first): no prompt dominates the set"))


class TrainConfig(Section):
    """The knobs every training stage has. `train.<knob>` sets one for all three stages, and
    `train_sft.<knob>` (or `train_rm.`, `train_policy.`) for one stage; a stage's own
    defaults (below each class) apply where neither is set."""
    enabled: bool = Field(True, description="run this training stage")
    epochs: float = Field(1.0, gt=0, description="passes over the training pairs")
    batch_size: int = Field(4, ge=1, description="per-device batch size")
    grad_accum: int = Field(1, ge=1, description="gradient accumulation steps")
    learning_rate: float = Field(5e-5, gt=0, description="peak learning rate")
    max_length: int = Field(256, ge=16, description="truncate prompt+response to this many tokens")
    lora: bool = Field(False, description=(
        "train LoRA adapters (merged into the saved model) instead of all weights"))
    lora_r: int = Field(16, ge=1, description="LoRA rank")
    max_steps: int = Field(-1, description="stop after this many steps (-1 = epochs decide)")
    report_to: str = Field("none", description=(
        "where the trainer logs: 'none', 'tensorboard', 'wandb', 'mlflow' (comma-separated for several;"
        " passed to TRL)"))
    shuffle: bool = Field(True, description=(
        "shuffle the training pairs (false: dataset order, which makes runs on different numbers of "
        "processes comparable step by step)"))
    bf16: bool | Literal["auto"] = Field("auto", description=(
        "bfloat16 mixed precision ('auto' = on CUDA when supported)"))
    gradient_checkpointing: bool | Literal["auto"] = Field("auto", description=(
        "trade compute for memory ('auto' = on CUDA)"))
    save_steps: int = Field(0, ge=0, description=(
        "write a checkpoint every this many steps (0 = none); an interrupted training of the same "
        "inputs resumes from the newest"))
    save_total_limit: int | None = Field(2, ge=1, description=(
        "checkpoints kept (older ones deleted; null = all)"))


TRAIN_KNOBS = tuple(TrainConfig.model_fields)
TRAIN_STAGES = ("train_sft", "train_rm", "train_policy")


def _unset(model: type[Section], name: str) -> type[Section]:
    """`model` with every field optional and unset (None): a section of overrides, validated
    with the same constraints as the fields it overrides."""
    def optional(f):
        kind = Annotated[f.annotation, *f.metadata] if f.metadata else f.annotation
        return kind | None, Field(None, description=f.description)
    fields = {k: optional(f) for k, f in model.model_fields.items()}
    return create_model(name, __base__=Section, **fields)


SharedTrainConfig = _unset(TrainConfig, "SharedTrainConfig")


class TrainSFTConfig(TrainConfig):
    learning_rate: float = Field(2e-5, gt=0, description="peak learning rate")
    batch_size: int = Field(2, ge=1, description="per-device batch size")
    lora: bool = Field(True, description=(
        "train LoRA adapters (merged into the saved model) instead of all weights"))


class TrainRMConfig(TrainConfig):
    use_margin: bool = Field(True, description=(
        "pass each pair's margin 2·P(chosen ≻ rejected) − 1 to RewardTrainer (confident pairs must be "
        "separated more; pairs without a probability get none)"))


class TrainPolicyConfig(TrainConfig):
    method: Literal["dpo", "kto", "orpo", "grpo", "rloo", "ppo"] = Field("dpo", description=(
        "'dpo' (offline, the blended pairs), 'kto' (offline, the judge's binary verdicts: `kto_data`), "
        "'orpo' (SFT and preference in one loss, no reference model), 'grpo' or 'rloo' (online RL on "
        "the pairs' prompts, rewarded by `reward`; RLOO subtracts the KL penalty from the reward, as "
        "PPO-RLHF does). 'ppo' is refused: TRL removed PPOTrainer"))
    reward: list[Literal["rm", "judge"]] = Field(["judge"], description=(
        "GRPO/RLOO rewards, summed: 'rm' (the trained reward model), 'judge' (the constitution judge "
        "scoring each completion: 1 − P(violates))"))
    num_generations: int = Field(4, ge=2, description=(
        "GRPO/RLOO completions sampled per prompt (the group)"))
    max_new_tokens: int = Field(64, ge=1, description="GRPO/RLOO completion length")
    kto_data: Literal["verdicts", "pairs", "both"] = Field("verdicts", description=(
        "KTO examples: 'verdicts' (every text a critique round judged, desirable when no violation was "
        "found), 'pairs' (the blended pairs, unpaired), or both"))
    init: Literal["auto", "sft", "base"] = Field("auto", description=(
        "start from the SL-CAI model of train-sft (the Constitutional AI recipe; the base when "
        "train_sft is disabled) or the base policy; 'auto' = sft, except base for orpo (it does SFT "
        "itself)"))
    loss_type: list[str] = Field(["sigmoid"], description=(
        "TRL DPO loss(es): 'sigmoid' (DPO), 'ipo', 'robust', 'hinge', 'exo_pair', 'nca_pair', "
        "'bco_pair', 'sppo_hard', 'aot', 'apo_zero', 'apo_down', 'discopop', 'sigmoid_norm', 'sft' "
        "(several are summed)"))
    beta: float = Field(0.1, gt=0, description=(
        "strength of the KL anchor to the reference: DPO/KTO β, the GRPO/RLOO KL coefficient (0.01–0.1 "
        "usual); for ORPO the odds-ratio weight λ"))
    label_smoothing: float | Literal["auto"] = Field("auto", description=(
        "DPO label smoothing (conservative DPO): a float in [0, 0.5), or 'auto' = mean of 1 − P(chosen "
        "≻ rejected) over the training pairs"))
    batch_size: int = Field(2, ge=1, description="per-device batch size")
    lora: bool = Field(True, description=(
        "train LoRA adapters (merged into the saved model) instead of all weights"))

    @field_validator("method")
    @classmethod
    def _no_ppo(cls, v):
        if v == "ppo":
            raise ValueError(
                "PPO is not available: TRL removed PPOTrainer and its value-head models "
                "(huggingface/trl#7020; from trl 1.10 it lived in trl.experimental.ppo, now "
                "gone). Use method 'rloo' with reward [rm]: the reward model's score minus "
                "beta x KL to the reference, PPO-RLHF's objective without the value network")
        return v


class EvaluateConfig(Section):
    harmful: str = Field("builtin:harmful", description=(
        "prompts that should be refused (JSONL/CSV/datasets dir)"))
    safe: str = Field("builtin:safe", description="prompts that look unsafe but should be answered")
    redteam: str = Field("builtin:redteam", description=(
        "prompts on which the judge compares each tuned policy's reply with the base's (win rate)"))
    limit: int = Field(12, ge=1, description="prompts used from each set (a seeded sample)")
    max_new_tokens: int = Field(48, ge=1, description="token budget of each evaluated reply")


class RunConfig(Section):
    run_dir: str = Field("outputs/default", description="where the store, exports, models and report go")
    constitution: str = Field("principles.yaml", description="the constitution file")
    seed: int = Field(0, description="seed for sampling, principle assignment and splits")
    models: ModelsConfig = ModelsConfig()
    openai: OpenAIConfig = OpenAIConfig()
    vllm: VLLMConfig = VLLMConfig()
    judge: JudgeConfig = JudgeConfig()
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

    @model_validator(mode="before")
    @classmethod
    def _shared_training(cls, data):
        """`train.<knob>` fills every training stage's knob that its own section leaves unset."""
        shared = data.get("train") if isinstance(data, dict) else None
        if not isinstance(shared, dict):
            return data
        given = {k: v for k, v in shared.items() if k in TRAIN_KNOBS and v is not None}
        stages = {s: {**given, **data[s]} if isinstance(data.get(s), dict) else data.get(s, given)
                  for s in TRAIN_STAGES}
        return {**data, **stages}

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
    """(key, default, description) for every config key: the one source of help text.

    The training knobs are listed once, as `train.*`, with each stage's default; a stage's
    section lists only the keys it alone has."""
    def walk(model, prefix):
        for name, f in model.model_fields.items():
            ann = f.annotation
            if name == "train":
                yield from _train_rows()
            elif isinstance(ann, type) and issubclass(ann, BaseModel):
                yield from walk(ann, f"{prefix}{name}.")
            elif not (prefix[:-1] in TRAIN_STAGES and name in TRAIN_KNOBS):
                yield f"{prefix}{name}", f.default, f.description or ""
    return list(walk(RunConfig, ""))


def _train_rows():
    stages = {s.removeprefix("train_"): RunConfig.model_fields[s].annotation for s in TRAIN_STAGES}
    for knob in TRAIN_KNOBS:
        defaults = {name: model.model_fields[knob].default for name, model in stages.items()}
        shown = next(iter(defaults.values())) if len(set(map(repr, defaults.values()))) == 1 \
            else StageDefaults(defaults)
        desc = TrainConfig.model_fields[knob].description
        yield f"train.{knob}", shown, desc


class StageDefaults(dict):
    """Per-stage defaults of a training knob, shown as `sft 2e-05, rm 5e-05, policy 5e-05`."""
    def __repr__(self):
        return ", ".join(f"{k} {v!r}" for k, v in self.items())
