"""Uncertainty-routed review (issue 31): the order on constructed cases, the trust interval it
reads, and the page saying why a pair was asked."""

import re
from collections import Counter

import pytest
from review_helpers import data_run

from cai.feedback.trust import trust_interval, trust_of
from cai.review.items import next_item
from cai.review.routing import Evidence, informs, route, routing_principles, worth
from cai.store.core import Store


def _report(per: dict) -> dict:
    """A calibration report with these (n, accuracy) per principle."""
    return {"n": sum(n for n, _ in per.values()), "shrinkage": 20, "trust_prior": 0.5,
            "calibrated": {"n": sum(n for n, _ in per.values()),
                           "per_principle": {p: {"n": n, "accuracy": a} for p, (n, a) in per.items()}}}


def test_the_trust_interval_starts_at_trust_and_narrows_with_labels():
    lo, hi = trust_interval(0.8, 40)
    assert lo == trust_of(0.8, 40) and hi > lo
    widths = [trust_interval(0.8, n)[1] - trust_interval(0.8, n)[0] for n in (10, 40, 160)]
    assert widths[0] > widths[1] > widths[2]
    assert trust_interval(None, 0) == trust_interval(0.9, 0)  # nothing judged: the prior alone


def test_a_wide_interval_with_pairs_waiting_is_asked_first_then_the_judges_doubt():
    # "other" fills the calibrate stage's pooling for every principle (20 pairs of the others)
    evidence = Evidence(_report({"wide": (4, 0.75), "narrow": (300, 0.9), "idle": (4, 0.75),
                                 "other": (400, 0.7)}), Counter())
    waiting = Counter({"wide": 40, "narrow": 40, "idle": 1})
    items = {"i-wide": {"judge_p_first": 0.9}, "i-narrow": {"judge_p_first": 0.9},
             "i-idle": {"judge_p_first": 0.9}, "i-wide-unsure": {"judge_p_first": 0.52},
             "i-narrow-unsure": {"judge_p_first": 0.5}}
    informed = {"i-wide": ["wide"], "i-narrow": ["narrow"], "i-idle": ["idle"],
                "i-wide-unsure": ["wide"], "i-narrow-unsure": ["narrow"]}
    w = worth(items, informed, evidence, waiting)
    order = sorted(items, key=lambda i: -w[i][0])
    # the wide principle many AI pairs ride on first, the judge's doubt first within it; the
    # same interval with one pair waiting after; among the narrow one the doubtful pair first
    assert order[:2] == ["i-wide-unsure", "i-wide"]
    assert order.index("i-narrow-unsure") < order.index("i-narrow")
    assert w["i-wide"][0] > w["i-idle"][0] > w["i-narrow"][0]
    assert re.fullmatch(r"asked because principle wide has 4 human labels, trust \[0\.00, "
                        r"0\.\d\d\], and 40 AI pairs wait on it", w["i-wide"][1])
    assert w["i-narrow-unsure"][1].endswith("; the judge is unsure of this pair (P 0.50)")
    # the routed order is what next_item serves, after items already begun
    assert next_item(items, [], "ann", 2, w) == "i-wide-unsure"
    begun = [{"item": "i-idle", "annotator": "bo", "role": "annotator", "choice": "first"}]
    assert next_item(items, begun, "ann", 2, w) == "i-idle"


def test_labels_not_yet_calibrated_count_as_evidence_on_its_way():
    before = Evidence(_report({"a": (4, 0.75), "b": (100, 0.6)}), Counter())
    after = Evidence(_report({"a": (4, 0.75), "b": (100, 0.6)}), Counter({"a": 30}), 30)
    assert after.n["a"] == 34 and after.total == before.total + 30
    narrowing = [e.spread("a") - e.after_label("a") for e in (before, after)]
    assert narrowing[1] < narrowing[0]


def test_while_the_pooling_fills_a_label_narrows_every_principle():
    """The calibrate stage pools up to `shrinkage` pairs of the other principles into each one's
    trust: with 3 pairs judged, a label of `a` adds evidence to `b` too."""
    early = Evidence(_report({"a": (2, 0.5), "b": (1, 0.5)}), Counter())
    gains = early.gains({("a",)}, Counter({"a": 1, "b": 1}))[("a",)]
    assert gains["a"] > 0 and gains["b"] > 0


def test_a_label_informs_the_principles_the_label_stage_will_judge_it_under(tmp_path, fake_backend):
    from cai.constitution import rank_principles
    cfg = data_run(tmp_path)
    principles = routing_principles(cfg)
    pid = "item-0123456789abcdef"
    assert informs(pid, principles, 2, 0) == [
        p.id for p in rank_principles(principles, "human/review-0123456789abcdef", 0)[:2]]


def test_the_review_page_serves_the_routed_pair_and_says_why(tmp_path, fake_backend):
    from cai.review.access import invite
    from cai.review.app import create_app
    from cai.review.commands import prepare
    cfg = data_run(tmp_path)
    prepare(cfg)
    with Store(tmp_path, lock=False) as store:
        token = invite(store, "ann")
        items, labels = store.review_items("label", queued=True), store.review_labels()
        w = route(store, items, labels, routing_principles(cfg), cfg.calibration.ensemble, cfg.seed)
    best = next_item(items, labels, "ann", 2, w)
    assert w[best][0] == max(v for v, _ in w.values()) > 0
    client = create_app(tmp_path, cfg).test_client()
    page = client.get(f"/a/{token}/label", headers={"Host": "127.0.0.1"}).get_data(as_text=True)
    assert f'action="/a/{token}/label/{best}"' in page
    assert 'id="why">asked because' in page
    random = cfg.model_copy(update={"review": cfg.review.model_copy(update={"order": "random"})})
    page = create_app(tmp_path, random).test_client().get(
        f"/a/{token}/label", headers={"Host": "127.0.0.1"}).get_data(as_text=True)
    assert 'id="why"' not in page and f'action="/a/{token}/label/{next_item(items, [], "ann", 2)}"' in page


@pytest.mark.parametrize("order", ["routed", "random"])
def test_review_order_is_a_config_key(order, tmp_path):
    from conftest import small_config
    assert small_config(tmp_path, **{"review.order": order}).review.order == order
