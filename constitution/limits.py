"""How big a constitution may be, and the YAML checks that run before anything is built.

Every text of a constitution is pasted into judge prompts (the system prompt and examples into
every one, a principle's texts into each of its own), so its size is bounded by what a judge
can read. The limits here hold for any judge; the pipeline also checks a constitution against
its judge's context length (`judge.context_tokens`).

PyYAML builds documents recursively: a few thousand nested brackets exhaust Python's stack.
`too_deep` reads the event stream instead, which is flat, and names the line where the nesting
goes past `MAX_DEPTH`; `MAX_NODES` bounds what aliases (`*a`) can expand to.
"""

from __future__ import annotations

import yaml

MAX_FILE_BYTES = 8_000_000
MAX_DEPTH = 32          # a valid constitution nests 4 deep (principles > item > tags > tag)
MAX_NODES = 1_000_000   # nodes visited, aliases expanded: a 20,000-principle file has ~200,000
MAX_TEXT = 8_000        # characters of one prompt text (system, critique, an example's reply)
MAX_ID = 64             # characters of a principle id or a tag
MAX_TAGS = 32
MAX_PRINCIPLES = 100_000
MAX_EXAMPLES = 1_000
CHARS_PER_TOKEN = 3     # a conservative estimate for English under BPE tokenizers (~4)


def too_deep(text: str, limit: int = MAX_DEPTH, line_of=None) -> int | None:
    """The 1-based line where the document nests deeper than `limit`, or None (`line_of(mark)`
    counts lines; by default as PyYAML does).

    Raises yaml.YAMLError (with a mark) for text that is not YAML at all."""
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            depth += 1
            if depth > limit:
                return line_of(event.start_mark) if line_of else event.start_mark.line + 1
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            depth -= 1
    return None


def estimated_tokens(chars: int) -> int:
    """Tokens that many characters take at most, about (no tokenizer needed)."""
    return chars // CHARS_PER_TOKEN + 1
