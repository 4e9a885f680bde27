"""Read a constitution YAML file, or say in one line where and why it is wrong.

Every error is `<file>:<line>: <what is wrong>`. Lines come from the composed YAML node
tree: each pydantic error `loc` (e.g. ("principles", 3, "weight")) is mapped to the start
mark of the node at that path, or of its nearest ancestor that exists.
"""

from __future__ import annotations

import bisect
import os
import stat
from typing import Any

import yaml
from pydantic import ValidationError

from .limits import MAX_DEPTH, MAX_FILE_BYTES, MAX_NODES, too_deep
from .explain import Loc, _keys, _show, _translate, _where
from .schema import Constitution, ConstitutionError


class _TooManyNodes(Exception):
    """Raised by _index at the node that goes past MAX_NODES; `args[0]` is its line."""



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














