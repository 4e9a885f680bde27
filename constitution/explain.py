"""A validation error of a constitution as one line a person reads: the topmost problem, with
the line of the YAML node at fault (`lines` maps a document path to its key and value lines)."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError

from .schema import Constitution, ConstitutionError, Example, Principle

Loc = tuple  # a path into the document: keys and list indices


def _line_of(loc: Loc, lines: dict, key: bool = False) -> int:
    """Line of the node at `loc`, or of its nearest ancestor present in the file."""
    for n in range(len(loc), -1, -1):
        # YAML keys are strings in `lines`; pydantic may report them as other types.
        probe = tuple(str(part) if not isinstance(part, int) else part for part in loc[:n])
        if probe in lines:
            key_line, value_line = lines[probe]
            return key_line if key and n == len(loc) else value_line
    return lines[()][1]

def _translate(error: ValidationError, data: Any, lines: dict, path: str) -> ConstitutionError:
    """One ConstitutionError for the topmost problem; all of them in `.problems`."""
    errors = _drop_explained_missing(error.errors(include_url=False))
    described = [_describe(err, data, lines) for err in errors]
    described.sort(key=lambda pair: pair[0])  # stable: ties keep pydantic's order
    line, message = described[0]
    result = ConstitutionError(path, line, message)
    result.problems = [f"{path}:{ln}: {msg}" for ln, msg in described]
    return result


def _drop_explained_missing(errors: list[dict]) -> list[dict]:
    """A misspelt key also reports the real key as missing; keep only the misspelling."""
    unknown = {(tuple(e["loc"][:-1]), str(e["loc"][-1])) for e in errors if e["type"] == "extra_forbidden"}

    def explained(e: dict) -> bool:
        if e["type"] != "missing":
            return False
        owner, name = tuple(e["loc"][:-1]), str(e["loc"][-1])
        typos = [key for o, key in unknown if o == owner]
        return bool(difflib.get_close_matches(name, typos, n=1))

    kept = [e for e in errors if not explained(e)]
    return kept or errors


def _describe(err: dict, data: Any, lines: dict) -> tuple[int, str]:
    kind, loc = err["type"], tuple(err["loc"])
    if kind == "constitution_consistency":
        return _describe_consistency(err["ctx"], lines)
    owner = _owner(loc)
    rest = loc[len(owner):]
    if kind == "missing":
        return _line_of(loc[:-1], lines), f"{_where(owner, data)}missing '{loc[-1]}'"
    if kind == "extra_forbidden":
        return _line_of(loc, lines, key=True), f"{_where(owner, data)}{_unknown_key(owner, loc[-1])}"
    if kind == "invalid_key":
        # YAML keys are indexed as text; an int here is a key, not a list index.
        key_loc = loc[:-1] + (str(loc[-1]),)
        return _line_of(key_loc, lines, key=True), f"{_where(owner, data)}key {_show(loc[-1])} must be text"
    if not rest:  # the principle or example itself has the wrong shape
        return _line_of(loc, lines), f"{_subject(owner)} {_problem(err, owner)}"
    return _line_of(loc, lines), f"{_where(owner, data)}{_field(rest)} {_problem(err, rest)}"


def _describe_consistency(ctx: dict, lines: dict) -> tuple[int, str]:
    line = _line_of(ctx["loc"], lines)
    if ctx["kind"] == "duplicate_id":
        first = _line_of(ctx["other"], lines)
        return line, f"duplicate principle id '{ctx['id']}' (first defined at line {first})"
    return line, ctx["message"]


def _owner(loc: Loc) -> Loc:
    """The principle or example a path is inside, or () for the top level."""
    if len(loc) >= 2 and loc[0] in ("principles", "examples") and isinstance(loc[1], int):
        return loc[:2]
    return ()


def _model(owner: Loc) -> type[BaseModel]:
    if not owner:
        return Constitution
    return Principle if owner[0] == "principles" else Example


def _subject(owner: Loc) -> str:
    return f"{'principle' if owner[0] == 'principles' else 'example'} #{owner[1] + 1}"


def _where(owner: Loc, data: Any) -> str:
    """`principle 'privacy': ` so users find the entry by the name they gave it."""
    if not owner:
        return ""
    if owner[0] == "principles":
        try:
            pid = data["principles"][owner[1]]["id"]
        except (KeyError, IndexError, TypeError):
            pid = None
        if isinstance(pid, str) and pid.strip():
            return f"principle '{pid.strip()}': "
    return f"{_subject(owner)}: "


def _field(rest: Loc) -> str:
    name = f"'{rest[0]}'"
    for part in rest[1:]:
        name += f" item {part + 1}" if isinstance(part, int) else f".{part}"
    return name


def _unknown_key(owner: Loc, key: Any) -> str:
    valid = list(_model(owner).model_fields)
    close = difflib.get_close_matches(str(key), valid, n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"valid keys: {', '.join(valid)}"
    return f"unknown key '{key}' ({hint})"


def _problem(err: dict, rest: Loc) -> str:
    """What is wrong with a value, in words a YAML editor uses."""
    kind, value, ctx = err["type"], err.get("input"), err.get("ctx") or {}
    got = f"got {_show(value)}"
    if kind == "string_type":
        if value is None:
            return "must not be empty"
        quoted = isinstance(value, (bool, int, float)) and not isinstance(value, str)
        return f"must be text, {got}" + (" (put it in quotes)" if quoted else "")
    if kind in ("float_type", "float_parsing", "int_type", "int_parsing"):
        return f"must be a number, {got}"
    if kind == "finite_number":
        return f"must be a finite number, {got}"
    if kind == "greater_than_equal":
        return f"must be >= {ctx.get('ge', 0):g}, {got}"
    if kind == "bool_type":
        return f"must be true or false, {got}"
    if kind == "list_type":
        return f"must be a list, {got}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"must be a mapping of {_keys(_model(_owner(err['loc'])))}, {got}"
    if kind in ("string_too_short", "too_short"):
        return "must not be empty"
    if kind == "string_too_long":
        return (f"is {len(value):,} characters; the limit is {ctx['max_length']:,} (it is pasted "
                "into judge prompts)")
    if kind == "too_long":
        return f"has {ctx.get('actual_length', '?'):,} items; the limit is {ctx['max_length']:,}"
    if kind == "string_pattern_mismatch":
        return f"must be a slug of lowercase letters, digits, '_' and '-', {got}"
    return f"is invalid: {err['msg']}"


def _keys(model: type[BaseModel]) -> str:
    return ", ".join(model.model_fields)


def _show(value: Any) -> str:
    """A short rendering of a YAML value for messages."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return repr(text)
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return str(value)
