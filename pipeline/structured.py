"""Structured judge answers: what a critique, a reasoning and a choice must look like.

Free text from a judge goes through a schema (pydantic) before the pipeline uses it. An answer
that does not parse is asked again, boundedly, with a new sample index and some temperature (a
greedy model would repeat itself); if it still does not parse, the failure and its reason are
returned for the stage to record and count. Nothing is dropped silently.
"""

import re
from dataclasses import replace

from pydantic import BaseModel, field_validator

from .filters import TEMPLATE_ECHO, is_degenerate

RETRY_TEMPERATURE = 0.7


class ParseError(ValueError):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class JudgeText(BaseModel):
    """A critique or a chain of thought: some words, not a loop, not the prompt read back."""
    text: str

    @field_validator("text")
    @classmethod
    def _usable(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("empty")
        if is_degenerate(v):
            raise ValueError("looping")
        if any(line in v for line in TEMPLATE_ECHO):
            raise ValueError("echoes the prompt")
        return v


# Named answer schemas a backend may enforce (JSON-schema structured output): the judge's text
# arrives as {"text": ...} and the backend hands the pipeline the text, parsed as usual after.
SCHEMAS = {"judge_text": JudgeText.model_json_schema()}


def parse_text(text: str | None) -> str:
    try:
        return JudgeText(text=text or "").text
    except ValueError as exc:
        raise ParseError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None


def parse_choice(text: str | None, choices: tuple) -> int:
    """Index of the choice a free-text answer settles on.

    Accepts "B", "(B)", "**Yes**.", "Response A", "Answer: B" (the last "Answer:" wins, as a
    reasoning may mention both before concluding); refuses answers naming several choices.
    """
    text = (text or "").strip()
    names = "|".join(re.escape(c) for c in choices)
    final = re.findall(rf"answer\s*(?:is)?\s*[:\-]?\s*\W*({names})\b", text, re.I)
    if final:
        return _index(final[-1], choices)
    found = {m.lower() for m in re.findall(rf"\b({names})\b", text, re.I)}
    if len(found) == 1:
        return _index(found.pop(), choices)
    raise ParseError("no choice" if not found else "several choices")


def _index(name: str, choices: tuple) -> int:
    return [c.lower() for c in choices].index(name.lower())


def generate_parsed(client, messages: list, params, parse, retries: int, seed: int, desc: str,
                    samples: list[int] | None = None, planned=None, schema: str | None = None):
    """Generate and parse, asking again where the answer does not parse.

    Returns (values, failures, call keys): value or None per request, the failure reason or
    None, and every call key made for it (provenance). A failed call is not retried here: it is
    stored with its reason, and `models.retry_failed` retries it on purpose. In a dry run,
    `planned` (if given) stands for the answer to a placeholder.
    """
    n = len(messages)
    samples = samples or [0] * n
    stride = max(samples, default=0) + 1
    values, failures, keys = [None] * n, [None] * n, [[] for _ in range(n)]
    todo = list(range(n))
    for attempt in range(retries + 1):
        if not todo:
            break
        p = params if attempt == 0 else replace(
            params, temperature=max(params.temperature, RETRY_TEMPERATURE))
        results = client.generate([messages[i] for i in todo], p, seed=seed,
                                  samples=[samples[i] + attempt * stride for i in todo],
                                  desc=desc if attempt == 0 else f"{desc} (retry {attempt})",
                                  schema=schema)
        again = []
        for i, res in zip(todo, results):
            keys[i].append(res.key)
            if res.error:
                failures[i] = "call_failed"
                continue
            try:
                values[i] = planned if res.planned and planned is not None else parse(res.text)
                failures[i] = None
            except ParseError as exc:
                failures[i] = exc.reason
                again.append(i)
        todo = again
    return values, failures, keys
