"""Untrusted text stays text: chat control strings inside it never become control tokens.

A red-team prompt, a policy's reply or a dataset row may contain the strings a chat template
uses to open and close turns (`<|im_end|>`, `<|start_header_id|>`, `[INST]`...). Tokenized as
they are, they would end the judge's user turn and open a system turn of the text's choosing,
and no backtick fence can stop that. So:

- `transformers:` tokenizes message contents with the tokenizer's own switch that splits
  special-token strings as plain text (`split_special_tokens`), the template's parts as usual
  (`encode_chat`): the model reads the same characters, never the control token; added tokens
  marked non-special, which that switch leaves whole, are broken as below;
- training (SFT, DPO, KTO, ORPO, GRPO/RLOO prompts, the reward model) hands TRL rows it renders
  and tokenizes whole, so their contents are broken as below (`protect`, with every special
  and added token of the model's tokenizer), and so is every scoring cai does after training
  (reward scores, the KL pass): training and scoring read a text the same way;
- `vllm:` and `openai:` hand text to an engine that tokenizes it, so there each control string
  is broken with a zero-width joiner after its first character (`neutralise`): the engine's
  tokenizer cannot match it. vLLM's strings come from its tokenizer; a remote server's are not
  known, so `GENERIC` covers the families in use and `openai.control_tokens` adds any others.

`control_strings` finds them for provenance (pairs record which of their texts had any).
"""

import functools
import re

# Control-token shapes of the common chat template families: ChatML / Llama 3 / Phi / Qwen
# (`<|...|>`), DeepSeek (full-width bars), Llama 2 / Mistral (`[INST]`, `<<SYS>>`, `<s>`),
# Gemma (`<start_of_turn>`), and the usual bos/eos/pad/unk spellings.
GENERIC = re.compile(
    r"<\|[^<>|\s]{1,64}\|>"
    r"|<｜[^<>｜]{1,64}｜>"
    r"|\[/?(?:INST|SYSTEM_PROMPT|AVAILABLE_TOOLS|TOOL_CALLS|TOOL_RESULTS)\]"
    r"|<</?SYS>>"
    r"|</?s>"
    r"|<(?:start_of_turn|end_of_turn|bos|eos|pad|unk|mask)>"
)
BREAK = "\u200d"  # zero-width joiner: invisible, and part of no tokenizer's control strings


def _pattern(specials, generic: bool = True) -> re.Pattern:
    return _compiled(tuple(sorted(set(specials))), generic)


@functools.lru_cache(maxsize=16)
def _compiled(specials: tuple, generic: bool) -> re.Pattern:
    words = sorted((s for s in specials if len(s) >= 2), key=len, reverse=True)
    if not words:
        return GENERIC if generic else re.compile(r"(?!x)x")  # the latter matches nothing
    return re.compile("|".join([*map(re.escape, words), *([GENERIC.pattern] if generic else [])]))


def control_strings(text: str, specials=()) -> list[str]:
    """The control strings in `text`: the given special tokens' and the GENERIC shapes."""
    return _pattern(specials).findall(text)


def neutralise(text: str, specials=(), generic: bool = True) -> str:
    """`text` with every control string (`specials`, and with `generic` the GENERIC shapes)
    broken after its first character, so no tokenizer reads it as a control token (a reader
    sees the same characters)."""
    return _pattern(specials, generic).sub(lambda m: m.group(0)[0] + BREAK + m.group(0)[1:], text)


def neutralise_messages(messages: list[dict], specials=()) -> list[dict]:
    return [{**m, "content": neutralise(m["content"], specials)} for m in messages]


def protect(value, words):
    """A message list's contents (or a plain text) with the control strings `words` broken:
    how every text TRL tokenizes whole is handed to it."""
    if isinstance(value, str):
        return neutralise(value, words)
    if isinstance(value, list):
        return [{**m, "content": neutralise(m["content"], words)}
                if isinstance(m, dict) and isinstance(m.get("content"), str) else m for m in value]
    return value


def special_tokens(tokenizer) -> list[str]:
    """Every special token string a Hugging Face tokenizer knows (named and added ones)."""
    found = set(getattr(tokenizer, "all_special_tokens", None) or [])
    for token in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        if getattr(token, "special", False):
            found.add(str(token.content))
    return sorted(found)


def added_plain_tokens(tokenizer) -> list[str]:
    """Added tokens marked non-special (Qwen's `<tool_call>`, DeepSeek-R1's `<think>`): the
    tokenizer matches them whole in any text, and `split_special_tokens` leaves them whole."""
    return sorted({str(t.content) for t in (getattr(tokenizer, "added_tokens_decoder", None)
                                            or {}).values() if not getattr(t, "special", False)})


def control_vocabulary(tokenizer) -> list[str]:
    """Every string this tokenizer turns into one control-like token whatever surrounds it."""
    return sorted({*special_tokens(tokenizer), *added_plain_tokens(tokenizer)})


# Markers standing in for message contents while the template renders: private-use characters
# a template copies through and no content is made of (contents are tokenized apart anyway).
_MARK = re.compile("\ue000(\\d+)\ue001")


def encode_chat(tokenizer, messages: list[dict]) -> list[int]:
    """Token ids of a chat as the template lays it out, with every message content tokenized as
    plain text: a control string inside a content stays characters."""
    return encode_chat_with_starts(tokenizer, messages)[0]


def encode_chat_with_starts(tokenizer, messages: list[dict]) -> tuple[list[int], list[int]]:
    """`encode_chat`'s ids, and the offset where each message's content starts (what a prefix
    cache cuts at: two chats with the same first k messages share ids[:starts[k]]).

    A template that alters contents (trims them, say) loses a marker; then the contents are
    neutralised instead, the whole rendering tokenized, and no offsets are known ([])."""
    marked = [{**m, "content": f"\ue000{i}\ue001"} for i, m in enumerate(messages)]
    rendered = tokenizer.apply_chat_template(marked, tokenize=False, add_generation_prompt=True)
    parts = _MARK.split(rendered)  # template, index, template, index, ..., template
    if [int(i) for i in parts[1::2]] != list(range(len(messages))):
        text = tokenizer.apply_chat_template(
            neutralise_messages(messages, control_vocabulary(tokenizer)), tokenize=False,
            add_generation_prompt=True)
        return tokenizer(text, add_special_tokens=False)["input_ids"], []
    ids, starts, plain = [], [], added_plain_tokens(tokenizer)
    for k, part in enumerate(parts):
        if k % 2:
            starts.append(len(ids))
            content = neutralise(messages[int(part)]["content"], plain, generic=False)
            ids += tokenizer(content, add_special_tokens=False,
                             split_special_tokens=True)["input_ids"]
        elif part:
            ids += tokenizer(part, add_special_tokens=False)["input_ids"]
    return ids, starts
