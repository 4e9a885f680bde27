"""The review app in ordinary use, every page opened in Chromium: the start page's counts and
hints, progress and undo, the evaluate question's criterion and the mark on a reply that may
have been cut, the pages for "done" and "not allowed"; items of a superseded run leave the
queue; `cai review invite` and `export` say what a lone annotator needs to know."""

import json

from review_helpers import browser_or_skip, data_run, launch, sign_in

from cai.review.commands import export, prepare
from cai.runs.runner import run_stages
from cai.stages import DATA_STAGES
from cai.store.core import Store


def _items(cfg, mode="label", queued=True):
    with Store(cfg.run_dir, lock=False) as store:
        return store.review_items(mode, queued=queued)


def test_every_page_in_chromium_progress_undo_criterion_and_cut_replies(served):
    link = served.link("bo") + "/"
    n = len(_items(served.cfg))
    with browser_or_skip() as p:
        browser = launch(p)
        page = sign_in(browser, link, "bo")
        # alone against annotators_per_item=2: the start page says how to go on
        assert page.is_visible("#solo-hint") and "annotators_per_item=1" in page.text_content("#solo-hint")
        page.click("#go-label")
        assert page.text_content("#progress").startswith(f"0 of {n} labelled by you")
        assert "more harmless, still helpful" in page.text_content("#question")
        first = page.text_content("#prompt")
        with page.expect_navigation():
            page.keyboard.press("a")
        assert page.text_content("#progress").startswith(f"1 of {n} labelled by you")
        # undo: the label is withdrawn and its item shown again
        with page.expect_navigation():
            page.keyboard.press("u")
        assert page.text_content("#prompt") == first
        assert page.text_content("#progress").startswith(f"0 of {n} labelled by you")
        with Store(served.cfg.run_dir, lock=False) as store:
            assert [r["choice"] for r in store.review_labels()][-1] == "undone"
        # the evaluate question states its criterion and marks a reply that stops mid-sentence
        page.goto(f"{link}evaluate")
        seen_cut = False
        while not page.query_selector("#done"):
            assert "declining only what is harmful" in page.text_content("#question")
            replies = {s: page.text_content(f"#reply-{s}") for s in "ab"}
            for side, text in replies.items():
                assert page.is_visible(f"#cut-{side}") == (text == "You fool")
                seen_cut |= text == "You fool"
            with page.expect_navigation():
                page.keyboard.press("s")
        assert seen_cut and "Nothing left to label" in page.text_content("#done")
        # not an adjudicator: a page that says so; no link: the same
        assert page.goto(f"{link}adjudicate").status == 403
        assert "not an adjudicator" in page.text_content("body")
        assert page.goto(served.url + "/").status == 403 and page.is_visible("#forbidden")
        stats = page.goto(f"{link}stats.json")
        assert stats.status == 200 and json.loads(stats.text())["labels"] >= 2
        browser.close()


def test_items_of_a_superseded_run_leave_the_queue_and_keep_their_labels(tmp_path, fake_backend):
    cfg = data_run(tmp_path)
    prepare(cfg)
    before = _items(cfg)
    labelled = next(iter(before))
    with Store(tmp_path, lock=False) as store:
        store.put_review_label(labelled, "ann", "annotator", "first", "")
    changed = cfg.model_copy(update={"generate": cfg.generate.model_copy(update={"max_new_tokens": 9})})
    run_stages(changed, DATA_STAGES, echo=lambda s: None)
    counts = prepare(changed)
    now = _items(changed)
    assert counts["label"] == len(now) and not set(before) & set(now)
    assert labelled in _items(changed, queued=False)  # kept, with its label, out of the queue
    with Store(tmp_path, lock=False) as store:
        assert [r["item"] for r in store.review_labels()] == [labelled]
    prepare(changed)  # nothing changed since: nothing moves
    assert _items(changed) == now


def test_export_says_why_nothing_is_decided_when_one_person_labels(tmp_path, fake_backend):
    cfg = data_run(tmp_path)  # annotators_per_item: 2
    prepare(cfg)
    with Store(tmp_path, lock=False) as store:
        for item in list(store.review_items("label"))[:3]:
            store.put_review_label(item, "ann", "annotator", "first", "")
    n, hint = export(cfg, str(tmp_path / "labels.jsonl"))
    assert n == 0 and "3 labelled pairs wait for 2 different people" in hint
    assert "review.annotators_per_item=1" in hint
    solo = cfg.model_copy(update={"review": cfg.review.model_copy(update={"annotators_per_item": 1})})
    assert export(solo, str(tmp_path / "labels.jsonl")) == (3, "")


def test_invite_prints_a_link_that_names_the_person(tmp_path, fake_backend):
    from conftest import cai
    data_run(tmp_path)
    code, out, err = cai(tmp_path, "review", "--port", "9123", "invite", "Dana", "--adjudicator")
    assert code == 0, err
    link = out.split()[0]
    assert link.startswith("http://127.0.0.1:9123/a/") and "for Dana" in out
    from cai.review.access import token_hash
    with Store(tmp_path, lock=False) as store:
        assert store.annotator_of(token_hash(link.rstrip("/").rsplit("/", 1)[1])) == {
            "name": "Dana", "adjudicator": True}
    code, _, err = cai(tmp_path, "review", "invite", "bad\u202ename")
    assert code == 2 and "1-80 printable characters" in err and err.count("\n") == 1
