"""What `cai review` makes of annotators of known quality: agreement and decisions vs truth.

    python bench/review.py [--items 200] [--annotators 3]      # seconds; prints two tables

Scripted annotators label the shipped human calibration pairs (truth: the pair's human choice,
shown in a seeded random order) through cai's own code (`cai.review`: assignment, the
store's label rows, majority and adjudication, Krippendorff's alpha); each is right with a set
accuracy and otherwise picks one of the two other answers (the other reply, or tie). Then a blind
A/B round where the tuned policy truly wins 70 % of prompts: the measured human win rate and its
95 % interval. A useful review tool shows alpha rising with annotator quality, majority decisions
more accurate than any one annotator, and an interval that covers the true win rate.

Then the order people are asked in (`review.order`), random vs routed, side by side: labels go
one at a time to pairs of the shipped slice, each informing the principles the label stage would
judge it under (`cai.review.routing.informs`), and a scripted judge agrees with people under each
principle at its own rate (seeded, 0.5 to 0.95); the AI pairs waiting on each principle are those
the label stage would assign 300 comparisons. After every label: the trust-interval width (the
routing's own measure, `Evidence.spread`, weighted by the AI pairs waiting), through cai's code,
averaged over `--repeats` judges. The routed arm asks what `cai review` would serve next.
"""

import argparse
import random
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cai.inputs.sources import load_human_pairs  # noqa: E402
from cai.review.agreement import agreement, decide, win_rates  # noqa: E402
from cai.review.items import item_id, next_item  # noqa: E402
from cai.review.routing import Evidence, informs, routing_principles, worth  # noqa: E402
from cai.store.core import Store  # noqa: E402


def label_round(store, mode, truth, accuracy, people, need, rng):
    items = store.review_items(mode)
    for who in people:
        while (item := next_item(items, store.review_labels(), who, need)) is not None:
            right = truth[item]
            wrong = [c for c in ("first", "second", "tie") if c != right]
            store.put_review_label(item, who, "annotator",
                                   right if rng.random() < accuracy else rng.choice(wrong), "")
    for item, d in decide(items, store.review_labels(), need).items():
        if d["status"] == "adjudicate":  # the adjudicator is as good as the annotators
            right = truth[item]
            choice = right if rng.random() < accuracy else ("second" if right == "first" else "first")
            store.put_review_label(item, "adjudicator", "adjudicator", choice, "")
    return decide(items, store.review_labels(), need)


def run(n_items, n_people, accuracy, seed=0) -> dict:
    rng = random.Random(seed)
    pairs = load_human_pairs("builtin:calibration")[:n_items]
    people = [f"annotator-{k}" for k in range(n_people)]
    with tempfile.TemporaryDirectory() as tmp, Store(Path(tmp)) as store:
        items, truth = [], {}
        for p in pairs:
            flip = rng.random() < 0.5
            first, second = (p["rejected"], p["chosen"]) if flip else (p["chosen"], p["rejected"])
            items.append((p["id"], "label", {"prompt": p["prompt"], "first": first, "second": second}))
            truth[p["id"]] = "second" if flip else "first"
        for k in range(100):
            wins = rng.random() < 0.7
            items.append((f"e{k}", "evaluate", {"prompt": f"p{k}", "first": "base", "second": "tuned",
                                                "policy": "trained"}))
            truth[f"e{k}"] = "second" if wins else "first"
        store.put_review_items(items)
        label = label_round(store, "label", truth, accuracy, people, n_people, rng)
        ev = label_round(store, "evaluate", truth, accuracy, people, n_people, rng)
        true_rate = sum(truth[f"e{k}"] == "second" for k in range(100)) / 100
        return {"accuracy": accuracy, **agreement(label),
                "decided_right": sum(d["decision"] == truth[i] for i, d in label.items()) / len(label),
                "win_rate": win_rates(store.review_items("evaluate"), ev)["trained"],
                "true_win_rate": true_rate}


def _report(outcomes: dict, pairs: list[int], shrinkage: float) -> dict:
    """The calibration report's evidence: per principle its agreements (1 agree, 0 not), and
    per labelled pair whether the judge agreed under the (first of) its principles."""
    from cai.feedback.trust import trust_prior
    n = len(pairs)
    prior = trust_prior(sum(pairs) / n if n else None, n)
    per = {pid: {"n": len(v), "accuracy": sum(v) / len(v)} for pid, v in outcomes.items() if v}
    return {"n": n, "shrinkage": shrinkage, "trust_prior": prior,
            "calibrated": {"n": n, "per_principle": per}}


def assigned_waiting(principles, cfg):
    """AI pairs per principle if every principle had its share: the principles the label stage
    would give 300 comparisons."""
    from collections import Counter

    from cai.constitution import rank_principles
    return Counter(p.id for j in range(300)
                   for p in rank_principles(principles, f"cmp/{j}", cfg.seed)[:cfg.label.ensemble])


def run_waiting(run_dir):
    """AI pairs per principle of a real run, counted as `cai review` counts them."""
    from cai.review.items import pair_items
    from cai.review.routing import waiting_pairs
    from cai.store.core import ReadOnlyStore
    with ReadOnlyStore(run_dir) as store:
        return waiting_pairs({i: item for i, _, item in pair_items(store)})


def scripted_pool(principles, k: int, cfg, rng) -> tuple[dict, dict]:
    """The shipped pairs with a scripted judge: per principle an agreement rate drawn in
    [0.5, 0.95], per pair and principle a draw at that rate. (pool, agrees)."""
    rate = {p.id: rng.uniform(0.5, 0.95) for p in principles}
    pool = {}
    for p in load_human_pairs("builtin:calibration"):
        i = item_id("label", p["prompt"], p["chosen"], p["rejected"])
        pool[i] = {"informs": informs(i, principles, k, cfg.seed), "judge_p_first": rng.random()}
    return pool, {(i, pid): rng.random() < rate[pid] for i, it in pool.items() for pid in it["informs"]}


def judged_pool(run_dir, cfg) -> tuple[dict, dict]:
    """The human pairs a real run's judge labelled, with its cross-fitted calibrated labels
    (through cai's code): a pair agrees under a principle where the label is on the people's
    side (a tie: half)."""
    from cai.feedback.trust import cross_fit, judgement
    from cai.store.core import ReadOnlyStore
    with ReadOnlyStore(run_dir) as store:
        records = store.get_records(store.get_manifest("label-calibration")["ids"]).values()
    judged = [j for j in (judgement(r) for r in records) if j is not None]
    c = cfg.calibration
    pool, agrees = {}, {}
    for j in cross_fit(judged, c.folds, c.shrinkage, cfg.seed):
        pool[j["id"]] = {"informs": sorted(j["principles"]), "judge_p_first": j["p"]}
        for pid, e in j["principles"].items():
            agrees[(j["id"], pid)] = 1.0 if e["p"] > 0.5 else 0.5 if e["p"] == 0.5 else 0.0
    return pool, agrees


def order_run(budget: int, routed: bool, seed: int, waiting, pooled) -> dict:
    """Trust-interval widths after each of `budget` labels: weighted by the AI pairs waiting
    (the routing's measure), and the widest among principles with pairs waiting."""
    from collections import Counter
    cfg, rng = pooled["cfg"], random.Random(seed)
    pool, agrees = pooled["make"](rng)
    order = list(pool)
    rng.shuffle(order)
    outcomes, pairs, out = {pid: [] for pid in pooled["principles"]}, [], {"mean": [], "max": []}
    waited = [p for p in waiting if waiting[p] and p in outcomes]
    evidence = Evidence(_report(outcomes, pairs, cfg.calibration.shrinkage), Counter())
    for _ in range(min(budget, len(pool))):
        if routed:
            w = worth(pool, {i: it["informs"] for i, it in pool.items()}, evidence, waiting)
            item = next_item(pool, [], "bench", 1, w)
        else:
            item = order[0]
        order.remove(item)
        informed = pool.pop(item)["informs"]
        for pid in informed:
            outcomes[pid].append(agrees[(item, pid)])
        pairs.append(agrees[(item, informed[0])])
        evidence = Evidence(_report(outcomes, pairs, cfg.calibration.shrinkage), Counter())
        spread = {p: evidence.spread(p) for p in waited}
        out["mean"].append(sum(waiting[p] * spread[p] for p in waited) / sum(waiting[p] for p in waited))
        out["max"].append(max(spread.values()))
    return out


def order_table(budget: int, repeats: int, k: int, run_dir=None, judge_run=None):
    from cai.config.run import load_config
    cfg = load_config(None, [f"constitution={ROOT / 'principles.yaml'}"])
    principles = routing_principles(cfg)
    waiting = run_waiting(run_dir) if run_dir else assigned_waiting(principles, cfg)
    pooled = {"cfg": cfg, "principles": [p.id for p in principles],
              "make": (lambda rng: judged_pool(judge_run, cfg)) if judge_run
              else (lambda rng: scripted_pool(principles, k, cfg, rng))}
    arms = {arm: [order_run(budget, arm == "routed", seed, waiting, pooled) for seed in range(repeats)]
            for arm in ("random", "routed")}
    steps = len(arms["random"][0]["mean"])
    mean = {(arm, m): [sum(r[m][t] for r in runs) / repeats for t in range(steps)]
            for arm, runs in arms.items() for m in ("mean", "max")}
    where = f"the AI pairs of {run_dir}" if run_dir else "every principle's share of 300 comparisons"
    judge = (f"the real judge's cross-fitted calibrated labels of the pairs {judge_run} judged "
             f"({repeats} random orders)") if judge_run else f"{repeats} scripted judges"
    print(f"\nReview order, {steps} labels, {k} principle(s) per label; judge: {judge}; AI pairs "
          f"waiting: {where} ({sum(waiting.values())} on {len(waiting)} principles).\n"
          "Trust-interval width (90 %, trust's scale): weighted by the AI pairs waiting, and the "
          "widest of a principle with pairs waiting\n")
    print("| labels | weighted: random | weighted: routed | widest: random | widest: routed |")
    print("|---|---|---|---|---|")
    for t in sorted({max(1, steps * q // 10) for q in range(1, 11)}):
        print(f"| {t} | " + " | ".join(f"{mean[(arm, m)][t - 1]:.3f}" for m in ("mean", "max")
                                       for arm in ("random", "routed")) + " |")
    for m, name in (("mean", "weighted"), ("max", "widest")):
        final = mean[("random", m)][-1]
        reach = next((t + 1 for t, w in enumerate(mean[("routed", m)]) if w <= final), None)
        print(f"- {name}: routed reaches random's final width ({final:.3f}) after "
              + (f"{reach} labels ({reach / steps:.0%})" if reach else "more than the budget"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--annotators", type=int, default=3)
    ap.add_argument("--budget", type=int, default=96, help="labels in the review-order comparison")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--ensemble", type=int, default=1, help="principles each label informs")
    ap.add_argument("--run-dir", help="also with the AI pairs waiting of this run, and its "
                    "judge's labels of the human pairs it judged (`calibration.judge_pairs=null` "
                    "judges them all)")
    a = ap.parse_args()
    print(f"{a.items} pairs, {a.annotators} annotators each\n")
    print("| annotator accuracy | Krippendorff's alpha | percent agreement | majority right | "
          "human win rate [95 % CI] | true win rate |")
    print("|---|---|---|---|---|---|")
    for acc in (0.5, 0.6, 0.75, 0.9, 0.99):
        r = run(a.items, a.annotators, acc)
        w = r["win_rate"]
        print(f"| {acc:.2f} | {r['alpha']:.2f} | {r['percent_agreement']:.2f} | "
              f"{r['decided_right']:.2f} | {w['win_rate']:.2f} [{w['ci95'][0]:.2f}, {w['ci95'][1]:.2f}] "
              f"| {r['true_win_rate']:.2f} |")
    order_table(a.budget, a.repeats, a.ensemble)
    if a.run_dir:
        order_table(a.budget, a.repeats, a.ensemble, a.run_dir)
        order_table(a.budget, a.repeats, a.ensemble, a.run_dir, a.run_dir)


if __name__ == "__main__":
    main()
