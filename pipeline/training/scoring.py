"""Texts as training and scoring tokenize them: control strings inside stay text.

TRL renders each row's chat template and tokenizes the text whole, so a reply carrying
`<|im_end|>\n<|im_start|>system` would add real turn tokens to the batches it trains on, and a
non-special added token (`<think>`) would be one token whatever surrounds it. Every row cai hands
a trainer goes through `protected` first, and every score cai computes after training (reward
model scores, the KL pass) tokenizes through `conversation_ids`: both break the tokenizer's
control strings in message contents (`cai.inputs.control_tokens.protect`), so a model is scored on
a text exactly as it was trained on it.
"""

from cai.inputs.control_tokens import control_vocabulary, protect

TEXT_FIELDS = ("prompt", "chosen", "rejected", "completion", "messages")
# How training and scoring read texts: part of every trained model's and evaluation's name, so
# a model trained or scored before texts were protected (version 1) is made again, not reused.
TEXT_VERSION = 2


def protected(ds, tokenizer):
    """A datasets.Dataset of conversational or plain rows, with every message content's control
    strings broken."""
    words = control_vocabulary(tokenizer)
    fields = [c for c in TEXT_FIELDS if c in ds.column_names]
    return ds.map(lambda row: {c: protect(row[c], words) for c in fields}, desc="protect texts")


def conversation_ids(tokenizer, messages: list[dict], generation: bool = False) -> list[int]:
    """Token ids of a chat as training sees it (`protected`, the template rendered, the text
    tokenized whole); with `generation`, ending in the assistant turn's opening."""
    text = tokenizer.apply_chat_template(protect(messages, control_vocabulary(tokenizer)),
                                         tokenize=False, add_generation_prompt=generation)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def score_conversations(model, tokenizer, conversations, device: str,
                        max_batch_tokens: int = 2048) -> list[float]:
    """The reward model's score of each conversation (a list of chat messages), scored in
    length-sorted, right-padded chunks: the model reads each row at its last non-pad token, as
    it does in training, so a batched score equals the row's score alone (within float noise)
    at a fraction of the time of one forward pass per conversation."""
    import torch

    from cai.backends.prefix_cache import by_token_budget
    model.eval()
    rows = [conversation_ids(tokenizer, m) for m in conversations]
    out = [0.0] * len(rows)
    with torch.no_grad():
        for chunk in by_token_budget([len(r) for r in rows], max_batch_tokens):
            batch = tokenizer.pad({"input_ids": [rows[i] for i in chunk]}, padding_side="right",
                                  return_tensors="pt").to(device)
            for i, score in zip(chunk, model(**batch).logits[:, 0].tolist()):
                out[i] = float(score)
    return out


def reward_scores(model, tokenizer, rows, device: str) -> list[tuple[float, float]]:
    """(r(chosen), r(rejected)) for rows of conversational prompt/chosen/rejected."""
    flat = score_conversations(model, tokenizer, [row["prompt"] + row[side] for row in rows
                                                  for side in ("chosen", "rejected")], device)
    return list(zip(flat[0::2], flat[1::2]))


def reward_function(path: str, device: str):
    """A TRL reward function scoring (prompt, completion) with the reward model at `path`, as
    cai scores everywhere else: TRL's own would render and tokenize a completion whole."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).to(device)

    def reward(prompts, completions, **kwargs) -> list[float]:
        chats = [_turns(p) + _turns(c, "assistant") for p, c in zip(prompts, completions)]
        return score_conversations(model, tokenizer, chats, device)
    reward.__name__ = "reward_model"
    return reward


def _turns(x, role: str = "user") -> list[dict]:
    """TRL passes conversational prompts and completions as message lists, plain ones as text."""
    return list(x) if isinstance(x, list) else [{"role": role, "content": x}]
