"""Filters for judge revisions: why a revision is not a usable rewrite, counted by reason.

A small judge often fails at revising in recognisable ways: it loops, copies the original,
restates its critique, echoes its own prompt, comments on the response instead of rewriting it,
or copies the few-shot example. Each failure is a named reason, so the stage can count drops.
"""

import difflib
import re

from cai.constitution.render import CONVERSATION, DATA_NOTE, REVISION

# Preambles a small judge puts before the rewritten reply; stripped, not counted as a failure.
PREAMBLE = re.compile(r"^\s*(here is|here's)?\s*(the|a|my)?\s*(rewritten|revised|new|improved)"
                      r"\s*(response|reply|answer|version)?\s*(is)?\s*[:\-]\s*", re.I)
META = re.compile(r"^\s*(the|this) (assistant'?s? |original |revised )?(response|reply|answer)\b"
                  r"|^\s*(critique|revision)\s*:", re.I)


def similarity(a: str, b: str) -> float:
    return difflib.SequenceMatcher(None, a.lower(), b.lower(), autojunk=False).ratio()


# Sentences of the judge's own prompt template: a revision containing one is an echo of the
# prompt, not a reply (small judges do this often).
TEMPLATE_ECHO = [line.strip() for text in (CONVERSATION, REVISION) for line in text.splitlines()
                 if line.strip() and "{" not in line]

# A small judge runs on past its reply into the prompt template; cut it there.
RUN_ON = re.compile(r"^\s*```|" + re.escape(DATA_NOTE.split(" data")[0]), re.M)


def clean_revision(text: str) -> str:
    text = PREAMBLE.sub("", text or "", count=1)
    text = RUN_ON.split(text, maxsplit=1)[0]
    return text.strip().strip('"').strip()


def is_degenerate(text: str) -> bool:
    """Looping output ("I'm sorry. I'm sorry. ..."): few distinct words for its length."""
    words = text.lower().split()
    return len(words) >= 12 and len(set(words)) / len(words) < 0.35


def check_revision(revision: str, original: str, critique: str, examples=()) -> str | None:
    """Why a revision is unusable, or None if it is a real rewrite.

    `examples` are the few-shot revisions the judge was shown: a small judge often copies them.
    """
    if not revision:
        return "revision_empty"
    if is_degenerate(revision):
        return "revision_degenerate"
    if similarity(revision, original) > 0.9:
        return "revision_same_as_original"
    if similarity(revision, critique) > 0.6:
        return "revision_restates_critique"
    if any(line in revision for line in TEMPLATE_ECHO):
        return "revision_echoes_prompt"
    if META.search(revision):
        return "revision_is_commentary"
    if any(_copies(revision, e) for e in examples):
        return "revision_copies_example"
    return None


def _copies(revision: str, example: str) -> bool:
    """Starts like the example's reply (give or take a word), or mostly is it."""
    return (similarity(revision[:60], example[:60]) > 0.8
            or similarity(revision[:len(example) + 40], example) > 0.6)
