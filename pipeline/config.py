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

from constitution.limits import MAX_DEPTH, too_deep

from .config_eval import EvaluateConfig
from .config_loops import IterationsConfig, RayConfig, ReviewConfig
from .config_train import (TRAIN_KNOBS, TRAIN_STAGES, Section, SharedTrainConfig,  # noqa: F401
                           TrainConfig, TrainPolicyConfig, TrainRMConfig, TrainSFTConfig)
from .errors import ConfigError
from .hashing import content_hash

# Upper bounds of counts: past them a typo (10**9 samples) would build rows until memory runs
# out, so it is one line instead. Far above what any model or data set here needs.
MAX_TOKENS = 1_000_000
INTERNAL_ITERATION_KEYS = ("current", "root")
MAX_ROWS = 100_000_000

EMBEDDED = "transformers:smollm2-135m"


class ModelsConfig(Section):
    policy: str = Field(EMBEDDED, description=(
        "policy model spec '<backend>:<model>' (answers prompts; base of training)"))
    judge: str = Field(EMBEDDED, description="judge model spec (critiques, revisions, comparisons)")
    device: str = Field("auto", description="'auto' (CUDA if present), 'cpu' or 'cuda[:N]'")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field("auto", description=(
        "'auto' (bfloat16 on CUDA and on CPUs with bf16 instructions: AVX512-BF16, AMX; float32 on "
        "other CPUs), 'float32', 'bfloat16', 'float16'"))
    batch_size: int = Field(48, ge=1, le=4096, description=(
        "requests per backend batch at most; a call's requests are split into batches of even "
        "size (generation on a 2-core CPU: 32 rows decoded 1.6x as many tokens a second as 16, "
        "36 in one batch took 0.7x the time of 32 and 4; scoring is chunked by tokens)"))
    threads: int = Field(0, ge=0, le=1024, description="torch CPU threads; 0 = one per available core")
    shared_cache: str = Field("auto", description=(
        "model calls shared by every run directory on this machine, so a new run directory makes no "
        "call another already made: 'auto' (calls.sqlite in cai's cache directory, or "
        "$CAI_CALL_CACHE), a file path, or 'off'"))
    shared_cache_max_mb: float = Field(2048, gt=0, description=(
        "bound on the shared call cache's size: past it the least recently used calls go "
        "(`cai gc --shared MB` trims it on demand)"))
    prefix_cache: bool = Field(True, description=(
        "transformers backend: prefill prompt prefixes shared by several judge calls once and "
        "reuse them (less compute; log-probabilities within 2e-6 of a full prefill in float32, 3e-3 "
        "in bfloat16, so the setting is part of the model's identity)"))
    retry_failed: bool = Field(False, description=(
        "call again where a stored call failed (failures are kept, with their reason, and not retried "
        "by accident)"))

    @field_validator("shared_cache", mode="before")
    @classmethod
    def _off(cls, v):
        """YAML reads `off` as false and `on` as true."""
        return {False: "off", True: "auto"}.get(v, v) if isinstance(v, bool) else v


class OpenAIConfig(Section):
    base_urls: list[str] = Field(["http://127.0.0.1:8000/v1"], description=(
        "OpenAI-compatible endpoints for 'openai:<model>' specs; several are used round-robin (e.g. one"
        " `vllm serve` per GPU)"))
    model_base_urls: dict[str, list[str]] = Field({}, description=(
        "per-model endpoints, overriding base_urls (e.g. policy and judge on different servers)"))
    api_key_env: str = Field("OPENAI_API_KEY", description=(
        "name of the environment variable holding the API key (the key itself is never stored or "
        "logged)"))
    concurrency: int = Field(16, ge=1, le=4096, description="requests in flight at once")
    timeout: float = Field(120.0, gt=0, description="seconds before a request is abandoned and retried")
    max_retries: int = Field(6, ge=0, le=100, description=(
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
    tensor_parallel_size: int = Field(1, ge=1, le=1024, description=(
        "GPUs one model is split across (vLLM offline)"))
    data_parallel_size: int = Field(1, ge=1, le=1024, description="model replicas (vLLM offline)")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="share of GPU memory vLLM may take")
    max_model_len: int | None = Field(None, ge=1, le=MAX_TOKENS, description=(
        "context length (null = the model's)"))
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
    votes: int = Field(5, ge=1, le=100, description="answers sampled per question when scoring by vote")
    vote_temperature: float = Field(0.8, gt=0, description="sampling temperature of voted answers")
    context_tokens: int = Field(8192, ge=256, le=MAX_TOKENS, description=(
        "the judge's context length: the constitution's texts in one judge prompt (system prompt, "
        "example, principle) must fit in half of it, leaving the rest for the request and replies"))
    parse_retries: int = Field(2, ge=0, le=20, description=(
        "a judge answer that does not parse (empty or looping critique, no clear choice) is asked again"
        " this many times, then recorded as a failure"))


class InputsConfig(Section):
    on_bad_row: Literal["stop", "skip"] = Field("stop", description=(
        "a bad row in a prompt or calibration file (invalid JSON or UTF-8, a missing, empty or "
        "oversized text, a duplicate id, chosen = rejected): 'stop' with one line naming file:line, "
        "or 'skip' it and count it by reason in the stage line and metrics.json"))
    max_prompt_chars: int = Field(16000, ge=1, le=10_000_000, description=(
        "longest prompt or response text read from a data file, in characters (a longer row is bad)"))


class PromptsConfig(Section):
    source: str = Field("builtin:default", description=(
        "'builtin:default' (the human slice's training prompts, red-team openers, mixed 3:1 with "
        "cai's helpful and safe-but-sensitive prompts; never an evaluation prompt), or a JSONL/CSV "
        "file or a `datasets` directory (an optional `kind` column says 'red-team' or 'benign')"))
    field: str = Field("prompt", description="column holding the prompt text")
    id_field: str = Field("id", description=(
        "column holding a stable prompt id (hash of the text if absent)"))
    # 8 on the embedded default: its judge earns trust 0, so its AI pairs never reach training
    # and 12 prompts cost ~45 s more of a 2-core run for the same reward model and DPO data.
    limit: int = Field(8, ge=1, le=MAX_ROWS, description="use at most this many prompts (first N)")
    offset: int = Field(0, ge=0, le=MAX_ROWS, description=(
        "skip this many usable prompts first (iterations take fresh prompts this way)"))


class GenerateConfig(Section):
    samples: int = Field(2, ge=1, le=64, description="responses sampled per prompt")
    max_new_tokens: int = Field(80, ge=1, le=MAX_TOKENS, description="token budget of each response")
    temperature: float = Field(0.8, ge=0, description="sampling temperature (0 = greedy)")
    top_p: float = Field(0.95, gt=0, le=1, description="nucleus sampling mass")


class CritiqueConfig(Section):
    rounds: int = Field(1, ge=1, le=16, description=(
        "critique -> revision rounds per response (the embedded default: a second round revised 3 "
        "more of 24 responses for 60 s of a 2-core CPU; stronger judges: 2-4)"))
    tags: list[str] | None = Field(None, description="only principles with one of these tags (null = all)")
    critique_max_new_tokens: int = Field(48, ge=1, le=MAX_TOKENS, description="token budget of a critique")
    revision_max_new_tokens: int = Field(80, ge=1, le=MAX_TOKENS, description="token budget of a revision")
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
    max_comparisons_per_prompt: int = Field(4, ge=1, le=1024, description=(
        "comparisons per prompt at most (a seeded choice among the candidate pairs)"))
    ensemble: int = Field(3, ge=1, le=64, description=(
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
    cot_max_new_tokens: int = Field(96, ge=1, le=MAX_TOKENS, description="token budget of the reasoning")
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
    limit: int | None = Field(None, ge=1, le=MAX_ROWS, description=(
        "use the first N human pairs of the source (null = all)"))
    ensemble: int = Field(1, ge=1, le=64, description=(
        "principles per human pair the judge labels (comparison questions from `label.tags`)"))
    judge_pairs: int | None = Field(96, ge=1, le=MAX_ROWS, description=(
        "human training pairs the judge labels to be calibrated and earn trust on: a seeded choice "
        "by pair id, plus every pair decided in `cai review` (null = all). All of them train "
        "either way. Labelling all 268 of the default took 536 calls, a sixth of the default run; "
        "the 95 % interval of the judge's agreement is about ±0.10 on 96 pairs, ±0.06 on 268"))
    heldout: int = Field(32, ge=0, le=MAX_ROWS, description=(
        "human pairs held out of training (reward-model accuracy is measured on them); prompts of "
        "held-out pairs never enter training"))
    folds: int = Field(5, ge=2, le=100, description=(
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
    max_pairs_per_prompt: int = Field(2, ge=1, le=1024, description=(
        "AI pairs per prompt at most (highest weight first): no prompt dominates the set"))


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

    def settable(self) -> dict:
        """The config as a user may write it (`cai config`, a run's config.yaml): without the
        keys cai sets for itself, so the dump loads again."""
        return self.model_dump(exclude={"iterations": set(INTERNAL_ITERATION_KEYS)})

    def fingerprint(self, *sections: str) -> str:
        """Hash of some sections (all if none): what a stage's cached outputs depend on."""
        data = self.model_dump()
        return content_hash({s: data[s] for s in sections} if sections else data)


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
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"--set {item!r}: '{part}' is not a section")
    node[leaf] = _read_yaml(lambda: value, f"--set {key.strip()}") if value.strip() else None


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
            elif (f.json_schema_extra or {}).get("internal"):
                continue
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
