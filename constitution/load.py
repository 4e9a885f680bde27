"""Read a constitution YAML file, or say in one line where and why it is wrong.

Every error is `<file>:<line>: <what is wrong>`. Lines come from the composed YAML node
tree: each pydantic error `loc` (e.g. ("principles", 3, "weight")) is mapped to the start
mark of the node at that path, or of its nearest ancestor that exists.
"""

from __future__ import annotations

import bisect
import difflib
import os
import stat
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .limits import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, too_deep
from .schema import Constitution, ConstitutionError, Example, Principle


class _TooManyNodes(Exception):
    """Raised by _index at the node that goes past MAX_NODES; `args[0]` is its line."""

Loc = tuple  # a path into the document: keys and list indices


def load_constitution(path: str | os.PathLike) -> Constitution:
    """Load and validate a constitution file; raises ConstitutionError."""
    name = os.fspath(path)
    try:
        text = _read_bounded(name).decode("utf-8")
    except FileNotFoundError:
        raise ConstitutionError(name, None, "file not found") from None
    except IsADirectoryError:
        raise ConstitutionError(name, None, "is a directory, expected a YAML file") from None
    except UnicodeDecodeError as e:
        raise ConstitutionError(name, None, f"not UTF-8 text (bad byte at offset {e.start})") from None
    except OSError as e:
        raise ConstitutionError(name, None, f"cannot read: {e.strerror or e}") from None
    except ValueError as e:  # e.g. a path with a NUL byte
        raise ConstitutionError(repr(name), None, f"not a usable path ({e})") from None
    return parse_constitution(text, name)


def _read_bounded(name: str) -> bytes:
    """The file's bytes, if it is a regular file within MAX_FILE_BYTES: decided on the open file
    itself, before reading (a FIFO would wait for a writer forever, /dev/zero never ends)."""
    fd = os.open(name, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once, without a writer
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(name)
        if not stat.S_ISREG(info.st_mode):
            raise ConstitutionError(name, None, "is not a regular file (a pipe, device or socket); "
                                    "give a YAML file")
        data = f.read(MAX_FILE_BYTES + 1)
    if max(len(data), info.st_size) > MAX_FILE_BYTES:
        raise ConstitutionError(name, None, f"is {max(len(data), info.st_size):,} bytes; the limit "
                                f"is {MAX_FILE_BYTES:,} (every principle's text is pasted into judge "
                                "prompts)")
    return data


class _LineOf:
    """The 1-based line of a YAML mark as editors and grep count: PyYAML also breaks lines at
    U+0085, U+2028, U+2029 and a lone CR, which would put every later line number off."""

    def __init__(self, text: str):
        self.newlines = [i for i, c in enumerate(text) if c == "\n"]

    def __call__(self, mark) -> int:
        return bisect.bisect_left(self.newlines, mark.index) + 1


def parse_constitution(text: str, path: str = "<string>") -> Constitution:
    """Validate constitution YAML given as text; `path` only names it in errors."""
    line_of = _LineOf(text)
    lines: dict[Loc, tuple[int, int]] = {}
    duplicates: list[tuple[Loc, int, int]] = []

    def index(root):  # before the document is built: building flattens merge keys (`<<`)
        lines[()] = (line_of(root.start_mark),) * 2
        try:
            _index(root, (), lines, duplicates, line_of)
        except _TooManyNodes as e:
            raise ConstitutionError(path, e.args[0], f"more than {MAX_NODES:,} values once "
                                    "aliases are expanded (an alias bomb?)") from None
    root, data = _read_yaml(text, path, line_of, index)
    if root is None:
        raise ConstitutionError(path, 1, f"file is empty; expected a mapping of {_keys(Constitution)}")
    if not isinstance(root, yaml.MappingNode):
        raise ConstitutionError(path, line_of(root.start_mark), f"top level must be a mapping of "
                                f"{_keys(Constitution)}, got {_show(data)}")
    if duplicates:
        loc, line, first = duplicates[0]
        raise ConstitutionError(
            path, line, f"{_where(loc[:-1], data)}duplicate key '{loc[-1]}' (first at line {first})"
        )
    try:
        constitution = Constitution.model_validate(data)
    except ValidationError as e:
        raise _translate(e, data, lines, path) from None
    constitution._path = path
    constitution._lines = {p.id: lines[("principles", i)][0]
                           for i, p in enumerate(constitution.principles)}
    return constitution


def _read_yaml(text: str, path: str, line_of, index) -> tuple[yaml.Node | None, Any]:
    """The root node (for line numbers) and the plain data built from it; `index(root)` runs
    on the node tree as written, before building changes it."""
    try:
        # The reader checks characters as it is built: a NUL byte fails here already.
        loader = yaml.SafeLoader(text)
    except yaml.reader.ReaderError as e:
        line = text.count("\n", 0, e.position) + 1
        raise ConstitutionError(path, line, f"invalid YAML: character {e.character:#x} is not "
                                "allowed") from None
    try:
        root = loader.get_single_node()
        if root is not None:
            index(root)
        data = loader.construct_document(root) if root is not None else None
    except yaml.MarkedYAMLError as e:
        raise ConstitutionError(path, *_describe_yaml_error(e, line_of)) from None
    except yaml.YAMLError as e:
        raise ConstitutionError(path, None, f"invalid YAML: {e}") from None
    except RecursionError:
        # PyYAML composes recursively; the event stream finds the line without recursing.
        raise ConstitutionError(path, too_deep(text, line_of=line_of), f"nested more than {MAX_DEPTH} levels "
                                "deep (a constitution needs 4)") from None
    finally:
        loader.dispose()
    return root, data


def _describe_yaml_error(e: yaml.MarkedYAMLError, line_of) -> tuple[int | None, str]:
    """Line of the problem, and both halves of PyYAML's message ("while X, found Y")."""
    mark = e.problem_mark or e.context_mark
    parts = []
    if e.context:
        context_mark = e.context_mark
        moved = context_mark is not None and mark is not None and context_mark.line != mark.line
        parts.append(e.context + (f" (line {line_of(context_mark)})" if moved else ""))
    if e.problem:
        parts.append(e.problem)
    return (line_of(mark) if mark is not None else None), "invalid YAML: " + ", ".join(parts)


def _index(node: yaml.Node, loc: Loc, lines: dict, duplicates: list, line_of) -> None:
    """Record (key line, value line) for every path; collect repeated keys. A merge key's
    (`<<: *base`) keys are the defaults a mapping's own keys override, not duplicates; paths
    they bring are found at their mapping's line."""
    if len(loc) > 6:  # deeper than any valid constitution; also stops recursive anchors
        return
    if len(lines) > MAX_NODES:  # aliases of aliases ("billion laughs") expand exponentially
        raise _TooManyNodes(line_of(node.start_mark))
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else None
            here = line_of(key_node.start_mark)
            if key in seen and key != "<<":
                duplicates.append((loc + (key,), here, seen[key]))
            seen.setdefault(key, here)
            if key == "<<":
                continue
            lines[loc + (key,)] = (here, line_of(value_node.start_mark))
            _index(value_node, loc + (key,), lines, duplicates, line_of)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[loc + (i,)] = (line_of(item.start_mark),) * 2
            _index(item, loc + (i,), lines, duplicates, line_of)


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
