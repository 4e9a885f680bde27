"""The config sections of the data stages: inputs and prompts, generate, critique, label,
calibration, pairs and blend."""

from typing import Literal

from pydantic import Field, field_validator

from cai.config.models import MAX_ROWS, MAX_TOKENS
from cai.config.train import Section


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
    mode: Literal["pairwise", "pointwise", "auto"] = Field("pairwise", description=(
        "how a comparison is asked: 'pairwise' (the judge sees both replies and picks one, in both "
        "orders), 'pointwise' (each reply is asked its principle's question alone; P(first ≻ second) "
        "comes from the two P(violates) through the calibration map; no position to be biased by), "
        "'auto' (both; the calibrate stage keeps, per principle, the mode whose held-out agreement "
        "with people is higher, and says which)"))
    average: Literal["logit", "probability"] = Field("logit", description=(
        "how the two answer orders combine: 'logit' (mean log-odds: a constant lean towards one "
        "position cancels exactly) or 'probability' (mean probability: a strong lean squashes the label"
        " towards 0.5)"))
    cot: bool = Field(False, description=(
        "chain of thought (pairwise labels): the judge reasons first, then its choice is scored; "
        "probabilities are clamped to `label.cot_clamp` (CoT answers are overconfident)"))
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
