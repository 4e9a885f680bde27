"""Structured judge answers: what a critique, a reasoning and a choice must look like.

Free text from a judge goes through a schema (pydantic) before the pipeline uses it. An answer
that does not parse is asked again, boundedly, with a new sample index and some temperature (a
greedy model would repeat itself); if it still does not parse, the failure and its reason are
returned for the stage to record and count. Nothing is dropped silently.
"""

import re
from dataclasses import replace

from pydantic import BaseModel, field_validator

from cai.feedback.filters import TEMPLATE_ECHO, is_degenerate

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


# How a judge names its choice when it writes more than the choice itself.
_DECOR = " \t\r\n*_`'\"()[]{}<>.,:;!?-"
_LABEL = r"(?i:(?:final\s+)?(?:answer|choice|option|response|reply|verdict))"
_FINAL = _LABEL + r"\s*(?i:is)?\s*[:\-]?\s*[*_`'\"(\[]*\s*(?:(?i:response|option|choice)\s+)?"
# Words that follow a letter used as a name ("B is safer", "A because ..."), not as an article.
_NAMING = ("is|was|seems|looks|does|would|should|because|since|as|wins|provides|gives|offers|"
           "avoids|refuses|answers|contains|complies|declines")
# ... and words that follow a name but never an article ("A or B", "B over A").
_JOINING = _NAMING + "|or|and|nor|vs|versus|than|over"


# What marks a mention of a choice as said *against* it ("A is worse", "not A", "B over A").
_BEFORE_AGAINST = re.compile(r"(?i:\b(?:not|never|rather\s+than|instead\s+of|over|than|"
                             r"against)\s+(?:response\s+|option\s+|choice\s+)?)$")
_BAD = r"(?:harmful|dangerous|toxic|unsafe|problematic|inappropriate|offensive|risky|unethical)"
_GOOD = r"(?:helpful|safe|appropriate|accurate|honest|ethical|responsible|polite|harmless|useful)"
_AFTER_AGAINST = re.compile(
    r"\s*(?:[*_`'\")\]]*\s*)(?i:(?:is|was|seems|looks|appears|would\s+be)\s+"
    r"(?:the\s+|a\s+|much\s+|far\s+|clearly\s+|even\s+|more\s+|also\s+)*"
    rf"(?:worse|wrong|bad|unacceptable|more\s+{_BAD}|less\s+{_GOOD}|{_BAD})\b"
    r"|(?:is|was)\s+not\s+(?:the\s+)?(?:better|safer|best|preferred|preferable|right|correct|"
    r"appropriate|acceptable|harmless)\b"
    r"|(?:does\s+not|doesn't|fails\s+to)\s+(?:follow|comply|respect|adhere|meet)"
    r"|fails\b|violates\b|loses\b)")


def parse_choice(text: str | None, choices: tuple) -> int:
    """Index of the choice a free-text judge answer settles on.

    The prompt asks for the choice alone ("Answer with the letter A or B only.", "Answer Yes or
    No."), so that is read first: the whole answer is a choice ("B", "(a).", "**Yes**"). Then,
    in order, the last "Answer: X"; for word choices, the first word ("No, it does not");
    choices named as such ("Response B", "(B)", "**B**", "B is safer", "I prefer B"); a choice
    standing alone. Letters are matched case-sensitively and not where they are an article:
    "This is a safer reply" names no choice, and "A better answer would be B" names B. A letter
    named against itself ("A is worse", "A is more harmful than B", "not A", "B over A") is a
    vote for the other of two letters, never for itself. More than one distinct choice at the
    level that decides is refused.
    """
    text = (text or "").strip()
    core = re.sub(rf"^{_LABEL}\s*[:\-]?", "", text.strip(_DECOR)).strip(_DECOR)
    for i, c in enumerate(choices):
        if core.lower() == c.lower():
            return i
    final = _votes(text, choices, [_FINAL + _names(choices)])
    if final:
        return final[-1]
    words = [c for c in choices if len(c) > 1]
    first = re.match(r"\W*(\w+)", text)
    if words and first and first.group(1).lower() in {c.lower() for c in words}:
        return _index(first.group(1), choices)
    for found in (set(_votes(text, choices, _named_patterns(choices))), _standing(text, choices)):
        if len(found) == 1:
            return found.pop()
        if found:
            raise ParseError("several choices")
    raise ParseError("no choice")


def _names(choices) -> str:
    """A regex group matching any choice as a word, case-sensitively for letters."""
    return "(" + "|".join(re.escape(c) if len(c) == 1 else f"(?i:{re.escape(c)})"
                          for c in choices) + r")(?![\w'])"


def _named_patterns(choices) -> list[str]:
    names = _names(choices)
    return [rf"{_LABEL}\s+{names}", rf"[(\[]{names[:-9]}[)\]]", rf"\*\*{names[:-9]}\*\*",
            rf"(?<![\w']){names}\s+(?:{_NAMING})\b",
            rf"(?i:prefer|choose|chose|pick|picked|select|selected|go with)\s+{names}"]


def _votes(text: str, choices, patterns: list[str]) -> list[int]:
    """The choice each match of `patterns` votes for, in text order (see `_vote`)."""
    found = sorted((m.start(1), m.end(1), m.group(1)) for p in patterns for m in re.finditer(p, text))
    votes = [_vote(text, start, end, name, choices) for start, end, name in found]
    return [v for v in votes if v is not None]


def _vote(text: str, start: int, end: int, name: str, choices) -> int | None:
    """The choice a mention of `name` at text[start:end] votes for: itself, or where it is
    named against itself, the other of two letters (None for other choice sets)."""
    i = _index(name, choices)
    against = _BEFORE_AGAINST.search(text[max(0, start - 24):start]) or \
        _AFTER_AGAINST.match(text, end)
    if not against:
        return i
    letters = len(choices) == 2 and all(len(c) == 1 for c in choices)
    return 1 - i if letters else None


def _standing(text: str, choices) -> set[int]:
    """Choices as whole words, exact case; a letter followed by a lowercase word is an article."""
    found = set()
    for i, c in enumerate(choices):
        for m in re.finditer(rf"(?<![\w']){re.escape(c)}(?![\w'])", text):
            if len(c) == 1 and re.match(rf"\s+(?!(?:{_JOINING})\b)[a-z]", text[m.end():]):
                continue
            vote = _vote(text, m.start(), m.end(), c, choices)
            if vote is not None:
                found.add(vote)
    return found


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
