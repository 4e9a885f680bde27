"""The constitution's data model: principles, few-shot examples, and their versions.

A principle's `version` hashes only the text that reaches a model (id and the three
requests), so a record made under a principle keeps its id when someone edits a
different principle, or re-weights or re-tags this one. See docs/architecture.md, invariant 1.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from .limits import MAX_EXAMPLES, MAX_ID, MAX_PRINCIPLES, MAX_TAGS, MAX_TEXT

SLUG = r"^[a-z0-9_-]+$"

# Bump a kind's suffix when the meaning of its hashed payload changes, so old and new
# versions can never collide.
PRINCIPLE_HASH_KIND = "cai.principle/1"
PREAMBLE_HASH_KIND = "cai.preamble/1"
CONTENT_HASH_KIND = "cai.constitution/1"


class ConstitutionError(Exception):
    """A bad constitution file; str() is one line: `<file>:<line>: <what is wrong>`."""

    def __init__(self, path: str, line: int | None, message: str):
        self.path = path
        self.line = line  # 1-based; None when the problem has no place (file not found)
        # One line, always: the CLI prints it as is and logs grep for it.
        self.message = message.replace("\r", "\\r").replace("\n", "\\n")
        where = f"{path}:{line}" if line is not None else path
        super().__init__(f"{where}: {self.message}")
        self.problems = [str(self)]  # every problem found, when there were several


def digest(kind: str, payload: Any) -> str:
    """sha256 (first 16 hex chars) of canonical JSON, prefixed by what is being hashed."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(f"{kind}\n{text}".encode("utf-8")).hexdigest()[:16]


# strict: YAML `weight: "2"` or `version: 1.0` is a mistake worth naming, not coercing.
# str_strip_whitespace: block scalars (`critique: |`) end in newlines nobody means.
_MODEL_CONFIG = ConfigDict(
    extra="forbid", strict=True, frozen=True, str_strip_whitespace=True
)


Text = Annotated[str, Field(min_length=1, max_length=MAX_TEXT)]  # pasted into judge prompts
# A tag is a slug like an id: a zero-width or look-alike letter would make a tag that reads
# the same as another and selects different principles.
Tag = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID, pattern=SLUG)]


class Example(BaseModel):
    """A worked few-shot example: a response, its critique and its revision."""

    model_config = _MODEL_CONFIG

    prompt: Text = Field(description="the user's request")
    response: Text = Field(description="a reply to critique")
    critique: Text = Field(description="the critique a judge should write of it")
    revision: Text = Field(description="the reply rewritten so the critique no longer applies")
    violates: bool = Field(True, description="whether the response violates the principle")
    principle: str | None = Field(None, description=(
        "the id of the principle this example shows (none: shown for every principle)"))


class Principle(BaseModel):
    """One rule the judge checks: how to critique, revise and compare under it."""

    model_config = _MODEL_CONFIG

    id: str = Field(min_length=1, max_length=MAX_ID, pattern=SLUG, description=(
        "a stable slug (lowercase letters, digits, '_', '-'): records name it"))
    critique: Text = Field(description="the question the judge asks of a reply under this principle")
    revision: Text = Field(description="how the judge rewrites a reply that violates it")
    comparison: Text = Field(description="the question the judge answers comparing two replies")
    tags: list[Tag] = Field(min_length=1, max_length=MAX_TAGS, description=(
        "labels stages select principles by (critique.tags, label.tags)"))
    weight: float = Field(default=1.0, ge=0, allow_inf_nan=False, description=(
        "relative share of records judged under this principle (0: never first)"))

    @property
    def version(self) -> str:
        # weight and tags only steer which records get this principle; they never
        # reach a prompt, so changing them must not change any record id.
        return digest(PRINCIPLE_HASH_KIND, {
            "id": self.id,
            "critique": self.critique,
            "revision": self.revision,
            "comparison": self.comparison,
        })


class Constitution(BaseModel):
    """The whole file: judge system prompt, principles and few-shot examples."""

    model_config = _MODEL_CONFIG

    name: str = Field(min_length=1, max_length=200, description="the constitution's name")
    version: str = Field(min_length=1, max_length=200, description=(
        "your own label, e.g. '1.0' (records are versioned by the texts, not by this)"))
    system: Text = Field(description="the judge's system prompt, in every judge call")
    principles: list[Principle] = Field(min_length=1, max_length=MAX_PRINCIPLES, description=(
        "the rules the judge checks"))
    examples: list[Example] = Field([], max_length=MAX_EXAMPLES, description=(
        "worked few-shot examples: a response, its critique and its revision"))

    # Private so that a `path:` key in the YAML is an unknown key, not a field.
    _path: str | None = PrivateAttr(default=None)
    _lines: dict = PrivateAttr(default_factory=dict)  # principle id -> line in the file

    @property
    def path(self) -> str | None:
        """The file this was loaded from; not part of any version."""
        return self._path

    @property
    def preamble_version(self) -> str:
        """Hash of what every judge prompt shares: the system prompt and the examples."""
        return digest(PREAMBLE_HASH_KIND, {
            "system": self.system,
            "examples": [e.model_dump(mode="json") for e in self.examples],
        })

    @property
    def content_version(self) -> str:
        """Hash of everything in the file, weights and tags included."""
        return digest(CONTENT_HASH_KIND, self.model_dump(mode="json"))

    def line_of(self, principle_id: str) -> int | None:
        """The line a principle starts on in its file (None when not loaded from one)."""
        return self._lines.get(principle_id)

    def principle(self, id: str) -> Principle:
        for p in self.principles:
            if p.id == id:
                return p
        raise KeyError(unknown_name_message("principle", id, self.ids()))

    def ids(self) -> list[str]:
        return [p.id for p in self.principles]

    def select(self, tags: list[str] | None) -> list[Principle]:
        """Principles having any of `tags`, in file order; None means all."""
        if tags is None:
            return list(self.principles)
        # A misspelt tag would silently select nothing; name it instead.
        known = sorted({t for p in self.principles for t in p.tags})
        for tag in tags:
            if tag not in known:
                raise ValueError(unknown_name_message("tag", tag, known))
        wanted = set(tags)
        return [p for p in self.principles if wanted.intersection(p.tags)]

    @model_validator(mode="after")
    def _check_references(self) -> Constitution:
        problem = consistency_problem(self)
        if problem is not None:
            # The loader reads `loc` and `other` from ctx to name file lines.
            raise PydanticCustomError("constitution_consistency", "{message}", problem)
        return self


def json_schema() -> dict:
    """The JSON Schema of a constitution file, for editors (YAML language server) and linters.
    Cross-field rules (unique ids, examples naming a principle) are checked by the loader."""
    schema = Constitution.model_json_schema(mode="validation")
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **schema,
            "title": "cai constitution",
            "description": "A cai constitution (principles.yaml); `cai check` validates it fully."}


def consistency_problem(c: Constitution) -> dict | None:
    """First cross-field problem (duplicate id, dangling example reference), or None."""
    first_index: dict[str, int] = {}
    for i, p in enumerate(c.principles):
        if p.id in first_index:
            j = first_index[p.id]
            return {
                "kind": "duplicate_id", "id": p.id,
                "loc": ("principles", i, "id"), "other": ("principles", j, "id"),
                "message": f"duplicate principle id '{p.id}' (principles #{j + 1} and #{i + 1})",
            }
        first_index[p.id] = i
    for i, e in enumerate(c.examples):
        if e.principle is not None and e.principle not in first_index:
            return {
                "kind": "unknown_principle", "id": e.principle,
                "loc": ("examples", i, "principle"), "other": None,
                "message": f"example #{i + 1}: "
                + unknown_name_message("principle", e.principle, list(first_index)),
            }
    return None


def unknown_name_message(what: str, name: str, known: list[str]) -> str:
    """`unknown principle 'privcy' (did you mean 'privacy'?)`, else the known names."""
    close = difflib.get_close_matches(name, known, n=1)
    if close:
        return f"unknown {what} '{name}' (did you mean '{close[0]}'?)"
    return f"unknown {what} '{name}' (known: {', '.join(known)})"
