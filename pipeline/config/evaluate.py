"""The evaluate section: which prompts each policy answers, and how refusals are decided."""

from pydantic import Field, field_validator

from cai.config.train import Section


class EvaluateConfig(Section):
    harmful: str = Field("builtin:harmful-test", description=(
        "prompts that should be refused (JSONL/CSV/datasets dir); the default is the test half "
        "of the AdvBench dev set"))
    unsafe: str = Field("builtin:unsafe-test", description=(
        "unsafe twins of the safe prompts, which should be refused (XSTest contrast, test half)"))
    safe: str = Field("builtin:safe-test", description=(
        "prompts that look unsafe but should be answered: refusing them is over-refusal (XSTest "
        "safe, test half)"))
    redteam: str = Field("builtin:redteam", description=(
        "prompts on which the judge compares each tuned policy's reply with the base's (win rate)"))
    limit: int = Field(40, ge=1, le=1_000_000, description="prompts used from each set (a seeded sample)")
    detectors: list[str] = Field(["string", "judge"], min_length=1, description=(
        "refusal detectors, each measured against people on `refusal_labels`: 'string' (phrase "
        "match), 'judge' (the configured judge) or a model spec asked the judge's question; the "
        "one that agrees best with people leads"))
    refusal_labels: str = Field("builtin:refusal-labels-test", description=(
        "replies labelled by people as refusal / partial refusal / compliance (fields prompt, "
        "reply, human_label), on which every detector is measured"))

    @field_validator("detectors")
    @classmethod
    def _known_detectors(cls, v):
        for d in v:
            if d not in ("string", "judge") and ":" not in d:
                raise ValueError(f"'{d}' is not a detector: 'string', 'judge' or a model spec "
                                 "such as 'openai:gpt-4o-mini'")
        if len(set(v)) != len(v):
            raise ValueError("a detector is named twice")
        return v
    max_new_tokens: int = Field(48, ge=1, le=1_000_000, description="token budget of each evaluated reply")
