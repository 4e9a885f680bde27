"""`cai review`: decisions, agreement and win rate from labels; the page in a real browser with
two annotators; escaping; labels feeding the next run's calibration slice."""

import json
import threading

import pytest
from review_helpers import XSS, browser_or_skip, data_run, label_all, launch, sign_in

from cai.review.agreement import agreement, decide, review_metrics, reviewed_pairs, win_rates
from cai.review.items import next_item, shown_swapped, to_choice
from cai.runs.runner import run_stages
from cai.stages import DATA_STAGES
from cai.store.core import Store


def _labels(*rows):
    return [{"item": i, "annotator": a, "role": r, "choice": c} for i, a, r, c in rows]


def test_majority_decides_a_tie_goes_to_adjudication_and_the_adjudicator_settles_it():
    items = {"x": {}, "y": {}, "z": {}}
    labels = _labels(("x", "ann", "annotator", "first"), ("x", "bo", "annotator", "first"),
                     ("x", "cy", "annotator", "second"),
                     ("y", "ann", "annotator", "first"), ("y", "bo", "annotator", "second"),
                     ("y", "cy", "annotator", "tie"),
                     ("z", "ann", "annotator", "second"), ("z", "bo", "annotator", "skip"))
    d = decide(items, labels, need=3)
    assert (d["x"]["status"], d["x"]["decision"], d["x"]["by"]) == ("decided", "first", "majority")
    assert d["y"]["status"] == "adjudicate" and d["y"]["decision"] is None
    assert d["z"]["status"] == "pending"  # a skip is not a label
    d = decide(items, labels + _labels(("y", "ann", "adjudicator", "second")), need=3)
    assert (d["y"]["decision"], d["y"]["by"]) == ("second", "adjudicator")
    # a relabel is a later row: the latest label of an annotator counts
    d = decide(items, labels + _labels(("x", "cy", "annotator", "first")), need=3)
    assert d["x"]["votes"] == {"ann": "first", "bo": "first", "cy": "first"}


def test_agreement_is_krippendorffs_alpha_and_percent_agreement():
    import krippendorff
    import numpy as np
    same = decide({"a": {}, "b": {}}, _labels(("a", "p", "annotator", "first"),
                                              ("a", "q", "annotator", "first"),
                                              ("b", "p", "annotator", "second"),
                                              ("b", "q", "annotator", "second")), need=2)
    assert agreement(same) == {"rated_items": 2, "percent_agreement": 1.0, "alpha": 1.0}
    rows = [("a", "p", "first"), ("a", "q", "second"), ("b", "p", "second"), ("b", "q", "second"),
            ("c", "p", "tie"), ("c", "q", "tie"), ("c", "r", "first")]
    mixed = decide({"a": {}, "b": {}, "c": {}}, _labels(*[(i, a, "annotator", c) for i, a, c in rows]),
                   need=2)
    got = agreement(mixed)
    data = np.array([[0, 1, 2], [1, 1, 2], [np.nan, np.nan, 0]])
    assert got["alpha"] == round(float(krippendorff.alpha(reliability_data=data,
                                                          level_of_measurement="nominal")), 4)
    assert got["percent_agreement"] == round(2 / 5, 4)  # a: 0/1, b: 1/1, c: 1/3 label pairs


def test_win_rate_counts_ties_half_with_a_wilson_interval():
    items = {f"i{k}": {"policy": "trained"} for k in range(10)}
    labels = _labels(*[(f"i{k}", "p", "annotator", c) for k, c in
                       enumerate(["second"] * 6 + ["tie"] * 2 + ["first"] * 2)])
    w = win_rates(items, decide(items, labels, need=1))["trained"]
    assert (w["n"], w["wins"], w["ties"], w["losses"], w["win_rate"]) == (10, 6, 2, 2, 0.7)
    assert 0.38 < w["ci95"][0] < 0.7 < w["ci95"][1] < 0.92


def test_two_policies_under_one_name_have_their_own_win_rates():
    """`trained` is a new model each time it is retrained: its wins are not pooled with an
    older `trained`'s losses (which read as 0.5 for either)."""
    old, new = "transformers:run/models/policy-aaa", "transformers:run/models/policy-bbb"
    items = {**{f"o{k}": {"policy": "trained", "spec": old} for k in range(4)},
             **{f"n{k}": {"policy": "trained", "spec": new} for k in range(4)}}
    labels = _labels(*[(f"o{k}", "p", "annotator", "first") for k in range(4)],
                     *[(f"n{k}", "p", "annotator", "second") for k in range(4)])
    w = win_rates(items, decide(items, labels, need=1))
    assert w[old]["win_rate"] == 0.0 and w[new]["win_rate"] == 1.0
    assert w[new]["policy"] == "trained"


def test_the_latest_ruling_wins():
    """Adjudicator ann rules first, bo rules next, then ann rules again: ann's second ruling is
    the latest and decides (before, bo's ruling won because ann's first came earlier)."""
    items = {"y": {}}
    labels = _labels(("y", "p", "annotator", "first"), ("y", "q", "annotator", "second"),
                     ("y", "ann", "adjudicator", "first"), ("y", "bo", "adjudicator", "second"),
                     ("y", "ann", "adjudicator", "tie"))
    assert decide(items, labels, need=2)["y"]["decision"] == "tie"
    # a later skip withdraws that adjudicator's ruling: bo's stands
    withdrawn = labels + _labels(("y", "ann", "adjudicator", "skip"))
    assert decide(items, withdrawn, need=2)["y"]["decision"] == "second"


def test_each_item_gets_its_labels_from_different_annotators_and_order_is_blind():
    items = {f"i{k}": {} for k in range(5)}
    labels, order = [], []
    for _ in range(20):
        for who in ("ann", "bo", "cy", "di"):
            nxt = next_item(items, labels, who, need=3)
            if nxt:
                labels += _labels((nxt, who, "annotator", "first"))
                order.append(nxt)
    d = decide(items, labels, need=3)
    assert all(len(x["votes"]) == 3 for x in d.values())  # exactly 3 each, all different people
    assert len(labels) == 15
    swaps = [shown_swapped(f"i{k}", "ann") for k in range(40)]
    assert 10 < sum(swaps) < 30  # A is the first reply about half the time
    assert to_choice("a", swapped=True) == "second" and to_choice("b", swapped=False) == "second"


def test_two_annotators_label_adjudicate_and_evaluate_in_a_real_browser(served):
    cfg = served.cfg
    ann_link, bo_link = served.link("ann") + "/", served.link("bo") + "/"
    with browser_or_skip() as p:
        browser = launch(p)
        ann, bo = sign_in(browser, ann_link, "ann"), sign_in(browser, bo_link, "bo")
        # the principle, critiques and judge's P are there on demand, hidden by default
        ann.goto(f"{ann_link}label")
        assert not ann.is_visible("text=Judge's P(A is better)")
        ann.click("#context summary")
        assert ann.is_visible("text=Judge's P(A is better)")
        # ann prefers the shorter reply, bo the longer: they disagree on some pairs
        shorter = lambda q, a, b: "a" if len(a) <= len(b) else "b"  # noqa: E731
        longer = lambda q, a, b: "b" if len(a) <= len(b) else "a"  # noqa: E731
        # both browsers label at once, one item each in turn
        n_ann, n_bo = label_all([(ann_link, ann, shorter), (bo_link, bo, longer)], "label")
        with Store(cfg.run_dir, lock=False) as store:
            items = store.review_items("label")
        assert n_ann == n_bo == len(items) > 3
        # the start page counts them (it printed "<built-in method items of dict …> items")
        ann.goto(ann_link)
        start = ann.text_content("body")
        assert f"Label pairs: {len(items)} items, {len(items)} labelled by you" in " ".join(
            start.split()) and "built-in method" not in start
        # ties go to the adjudicator, ann; bo may not adjudicate
        assert bo.goto(f"{bo_link}adjudicate").status == 403
        [adjudicated] = label_all([(ann_link, ann, shorter)], "adjudicate")
        assert adjudicated == len(items)  # the two disagreed on every pair of different lengths
        # blind A/B of base vs tuned: both prefer the tuned reply, which refuses
        tuned = lambda q, a, b: "a" if a.startswith("I") else "b"  # noqa: E731
        # 'No.' = 'No.' is not asked
        assert label_all([(ann_link, ann, tuned), (bo_link, bo, tuned)], "evaluate") == [2, 2]
        stats = json.loads(ann.goto(f"{ann_link}stats.json").text())
        browser.close()
    with Store(cfg.run_dir, lock=False) as store:
        rows = store.review_labels()
    assert {r["annotator"] for r in rows} == {"ann", "bo"}
    assert sum(r["role"] == "adjudicator" for r in rows) == adjudicated
    assert stats["label"]["decided"] == len(items) and stats["label"]["percent_agreement"] == 0.0
    assert stats["label"]["alpha"] < 0
    [(spec, won)] = stats["evaluate"]["win_rate"].items()  # keyed by the policy's identity
    assert won == {"policy": "trained", "n": 2, "wins": 2, "ties": 0, "losses": 0,
                   "win_rate": 1.0, "ci95": won["ci95"]}
    from cai.review.commands import export
    from cai.review.commands import stats as write_stats
    out = cfg.run_dir + "/labels.jsonl"
    assert export(cfg, out) == (len(items), "")
    exported = [json.loads(line) for line in open(out)]
    assert all(len(r["chosen"]) <= len(r["rejected"]) for r in exported)  # ann's rule won
    assert {r["decided_by"] for r in exported} == {"adjudicator"}
    m = write_stats(cfg)
    metrics = json.load(open(cfg.run_dir + "/metrics.json"))
    assert metrics["review"] == json.loads(json.dumps(m))
    report = open(cfg.run_dir + "/report.html").read()
    # the tuned policy is named with the model it was (a later `trained` is another model)
    model = spec.rsplit("/", 1)[-1]
    assert "Krippendorff&#x27;s alpha" in report and \
        f"human win rate of trained ({model}) vs base" in report


def test_labels_posted_at_once_from_two_browsers_are_all_kept(served):
    import urllib.parse
    import urllib.request

    from cai.review.access import form_token
    with Store(served.cfg.run_dir, lock=False) as store:
        item = next(iter(store.review_items("label")))

    def annotate(name, errors):
        link = served.link(name)
        for k in range(25):
            req = urllib.request.Request(
                f"{link}/label/{item}", data=urllib.parse.urlencode(
                    {"choice": "ab"[k % 2], "order": "ab", "note": f"{name} {k}",
                     "form_token": form_token(link.rsplit("/", 1)[1])}).encode(),
                headers={"Origin": served.url})
            try:
                urllib.request.urlopen(req).read()
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                errors.append(exc)
    errors = []
    threads = [threading.Thread(target=annotate, args=(n, errors)) for n in ("ann", "bo")]
    [t.start() for t in threads], [t.join() for t in threads]
    assert not errors
    with Store(served.cfg.run_dir, lock=False) as store:
        notes = {r["note"] for r in store.review_labels()}
    assert notes == {f"{n} {k}" for n in ("ann", "bo") for k in range(25)}


def test_a_reply_carrying_script_is_shown_as_text_and_never_runs(served):
    with browser_or_skip() as p:
        browser = launch(p)
        link = served.link("ann") + "/"
        page = sign_in(browser, link, "ann")
        page.goto(f"{link}label")
        seen = False
        while not page.query_selector("#done"):
            texts = page.text_content("#reply-a") + page.text_content("#reply-b")
            seen = seen or XSS in texts
            with page.expect_navigation():
                page.keyboard.press("s")
        assert seen  # the attack is on the page, as text
        assert page.evaluate("window.__xss") is None
        browser.close()


def test_decided_labels_join_the_next_runs_calibration_and_recompute_only_what_follows(
        tmp_path, fake_backend):
    cfg = data_run(tmp_path)
    from cai.review.commands import prepare
    prepare(cfg)
    with Store(tmp_path, lock=False) as store:
        items = list(store.review_items("label"))[:3]
        for item in items:
            for who in ("ann", "bo"):
                store.put_review_label(item, who, "annotator", "first", "")
        pairs = reviewed_pairs(store, 2)
    assert len(pairs) == 3
    again = run_stages(cfg, DATA_STAGES, echo=lambda s: None)["stages"]
    assert again["generate"]["model_calls"] == again["critique"]["model_calls"] == 0
    assert again["label"]["model_calls"] > 0  # the judge labels the 3 new human pairs, only them
    assert again["calibrate"]["made"] == 1
    prefs = (tmp_path / "dataset" / "prefs.jsonl").read_text()
    assert all(p["id"] in prefs for p in pairs)
    # unchanged labels recompute nothing
    third = run_stages(cfg, DATA_STAGES, echo=lambda s: None)["stages"]
    assert all(s["model_calls"] == 0 for s in third.values())
    assert third["calibrate"]["made"] == 0


def test_review_metrics_are_none_until_someone_labels(tmp_path):
    with Store(tmp_path) as store:
        assert review_metrics(store, 3) is None


def test_a_port_out_of_range_is_one_line(tmp_path):
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-m", "cai.cli", "review", "--run-dir",
                          str(tmp_path), "--port", "70000"], capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "70000 is not in the range 0<=x<=65535" in out.stderr


def test_review_stats_waits_for_no_run_it_would_overwrite(tmp_path, fake_backend):
    """`cai review stats` rewrites metrics.json: under the run lock, so a running cai's report
    and its own never undo each other."""
    from cai.errors import RunLocked
    from cai.review.commands import stats
    cfg = data_run(tmp_path)
    with Store(tmp_path):  # a run in progress holds the lock
        with pytest.raises(RunLocked, match="another cai process"):
            stats(cfg)
    stats(cfg)  # no run in progress: written
    assert "review" in json.loads((tmp_path / "metrics.json").read_text())


def test_review_subcommands_honour_the_groups_run_dir(tmp_path):
    """`cai review --run-dir X load|stats|export` worked on outputs/default with exit 0."""
    import subprocess
    import sys
    run = tmp_path / "mine"
    Store(run).close()
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"prompt": "p", "chosen": "c", "rejected": "r"}) + "\n")
    cai = [sys.executable, "-m", "cai.cli", "review", "--run-dir", str(run)]
    for sub in (["load", str(pairs)], ["stats"], ["export"]):
        out = subprocess.run(cai + sub, capture_output=True, text=True, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
    assert not (tmp_path / "outputs").exists()  # nothing went to the default run directory
    with Store(run, lock=False) as store:
        assert len(store.review_items("label")) == 1
    assert (run / "review" / "labels.jsonl").exists()
