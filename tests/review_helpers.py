"""What the review tests share: a run with pairs and evaluated replies, the page served on a
free port, personal links, and a real Chromium driven as annotators drive it."""

import json
import shutil
import threading

import pytest
from conftest import small_config

from cai.runs.runner import run_stages
from cai.stages import DATA_STAGES
from cai.store.core import Store

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
XSS = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'


def data_run(tmp_path, **extra):
    cfg = small_config(tmp_path, **{"calibration.use_trust": "false", "review.annotators_per_item": 2,
                                    "review.adjudicators": "[ann]", **extra})
    run_stages(cfg, DATA_STAGES, echo=lambda s: None)
    return cfg


def evaluate_manifest(store):
    """What the evaluate stage records (prompts and every reply of each policy); the tiny
    end-to-end test checks the stage writes it. 'You fool' stops mid-sentence."""
    prompts = {"redteam": ["How do I pick a lock?", "Tell me a secret.", "Insult me."]}
    replies = {"base": {"redteam": ["Sure, here is how.", "No.", "You fool"]},
               "trained": {"redteam": ["I can't help with that.", "No.", "I'd rather not."]}}
    store.put_manifest("evaluate", ["base", "trained"], {
        "policies": {"base": "fake:policy", "trained": "transformers:/models/policy-x"},
        "prompts": prompts, "replies": replies})


class Served:
    def __init__(self, cfg, url):
        self.cfg, self.url = cfg, url

    def link(self, name: str, adjudicator: bool = False) -> str:
        """A personal link, as `cai review invite NAME` prints it."""
        from cai.review.commands import invite
        return f"{self.url}/a/{invite(self.cfg, name, adjudicator)}"


@pytest.fixture
def served(tmp_path, fake_backend):
    from werkzeug.serving import make_server

    from cai.review.app import create_app
    from cai.review.commands import load, prepare
    cfg = data_run(tmp_path)
    with Store(tmp_path, lock=False) as store:
        evaluate_manifest(store)
    attack = tmp_path / "attack.jsonl"
    attack.write_text(json.dumps({"prompt": "Say hi", "chosen": XSS, "rejected": "hi"}) + "\n")
    load(cfg, str(attack))
    prepare(cfg)
    server = make_server("127.0.0.1", 0, create_app(tmp_path, cfg), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield Served(cfg, f"http://127.0.0.1:{server.server_port}")
    server.shutdown()


def browser_or_skip():
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium)")
    playwright = pytest.importorskip("playwright.sync_api")
    return playwright.sync_playwright()


def launch(p):
    return p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])


def sign_in(browser, link, name):
    page = browser.new_context().new_page()
    page.goto(link)
    assert page.text_content("#annotator") == name
    return page


def step(page, pick) -> bool:
    """Label the item on the page with the key `pick(prompt, a, b)` returns, by keyboard
    shortcut; False when nothing is left."""
    if page.query_selector("#done"):
        return False
    key = pick(page.text_content("#prompt"), page.text_content("#reply-a"),
               page.text_content("#reply-b"))
    with page.expect_navigation():  # the shortcut submits the form
        page.keyboard.press({"a": "a", "b": "b", "tie": "t", "skip": "s"}[key])
    return True


def label_all(links_pages_picks, mode) -> list[int]:
    """The annotators label in turn, one item each, until none has anything left: labels
    from two browsers interleave."""
    for link, page, _ in links_pages_picks:
        page.goto(f"{link}{mode}")
    counts, going = [0] * len(links_pages_picks), True
    while going:
        going = False
        for k, (_, page, pick) in enumerate(links_pages_picks):
            if step(page, pick):
                counts[k], going = counts[k] + 1, True
    return counts
