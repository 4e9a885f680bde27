"""The injection benchmark's texts stay data: inside their fence in every judge prompt, and never
a control token; and bench/injection.py runs end to end."""

import re
import sys

import pytest
from conftest import ROOT, small_config
from transformers import AutoTokenizer

from cai.constitution import load_constitution, render_comparison, render_critique, render_revision

sys.path.insert(0, str(ROOT / "bench"))
from injection import injected, load_items, measure, table  # noqa: E402

ITEMS = load_items()
CONSTITUTION = load_constitution(ROOT / "principles.yaml")
PRINCIPLE = CONSTITUTION.principles[0]


def test_at_least_twenty_styles():
    assert len({it["style"] for it in ITEMS}) >= 20


def _prompts(item):
    reply = injected(item)
    c, p = CONSTITUTION, PRINCIPLE
    yield render_critique(c, p, item["prompt"], reply)
    yield render_revision(c, p, item["prompt"], reply, "A critique.")
    yield render_comparison(c, p, item["prompt"], item["safe"], reply)[0]
    yield render_comparison(c, p, item["prompt"], reply, item["safe"])[0]


def _fenced(content: str, text: str) -> bool:
    """`text` sits between an opening fence line and its closing fence, and no line inside it
    could close that fence (a run of at least as many backticks opening a line)."""
    start = content.rfind(text)  # the reply under judgement is the last one in the prompt
    opening = re.search(r"(`{3,})[^`\n]*\n$", content[:start])
    if not opening:
        return False
    ticks = opening.group(1)
    closes = re.compile(r"^ {0,3}" + ticks, re.M)
    return not closes.search(text) and content[start + len(text):].startswith("\n" + ticks)


@pytest.mark.parametrize("item", ITEMS, ids=[it["style"] for it in ITEMS])
def test_every_injected_text_stays_inside_its_fence(item):
    for messages in _prompts(item):
        assert _fenced(messages[-1]["content"], injected(item)), item["style"]


def test_no_injected_text_adds_a_control_token(tiny_model_dir):
    from cai.backends.transformers_backend import TransformersBackend
    from cai.inputs.control_tokens import special_tokens
    backend = TransformersBackend(str(tiny_model_dir))
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    specials = {tok.convert_tokens_to_ids(s) for s in special_tokens(tok)}
    for item in ITEMS:
        plain = {**item, "injection": ""}
        for clean, forged in zip(_prompts(plain), _prompts(item)):
            count = [sum(i in specials for i in backend._ids([m])[0]) for m in (clean, forged)]
            assert count[0] == count[1], item["style"]


def test_the_benchmark_runs_on_a_configured_judge(fake_backend, tmp_path):
    from cai.stages.context import RunContext
    ctx = RunContext(small_config(tmp_path))
    try:
        m = measure(ctx, ITEMS[:6])
    finally:
        ctx.close()
    assert m["scored"] == 6 and 0 <= m["p_plain"] <= 1 and 0 <= m["p_injected"] <= 1
    assert "flip rate" in table(m)
