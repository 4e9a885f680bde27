"""What `cai review` makes of annotators of known quality: agreement and decisions vs truth.

    python bench/review.py [--items 200] [--annotators 3]      # seconds; prints a table

Scripted annotators label the shipped human calibration pairs (truth: the pair's human choice,
shown in a seeded random order) through cai's own code (`cai.review`: assignment, the
store's label rows, majority and adjudication, Krippendorff's alpha); each is right with a set
accuracy and otherwise picks one of the two other answers (the other reply, or tie). Then a blind
A/B round where the tuned policy truly wins 70 % of prompts: the measured human win rate and its
95 % interval. A useful review tool shows alpha rising with annotator quality, majority decisions
more accurate than any one annotator, and an interval that covers the true win rate.
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
from cai.review.items import next_item  # noqa: E402
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=200)
    ap.add_argument("--annotators", type=int, default=3)
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


if __name__ == "__main__":
    main()
