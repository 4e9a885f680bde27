"""What the labels say: one decision per item, agreement between annotators, the tuned
policy's human win rate, and the decided pairs the next run's calibration slice takes.

Decision of an item: an adjudicator's label if there is one; otherwise, once it has
`review.annotators_per_item` labels (skips do not count), the choice most of them made; a tie
for the most (1 A, 1 B, 1 tie; or 1 A, 1 B) puts it in the adjudication queue.
"""

from collections import Counter

from cai.review.items import CHOICES, latest, reviewed_id
from cai.stats import wilson

VALUES = {c: i for i, c in enumerate(CHOICES)}  # nominal codes for Krippendorff's alpha


def decide(items: dict, labels: list[dict], need: int) -> dict:
    """item -> {votes, decision (first/second/tie or None), status, by}."""
    votes, ruled = latest(labels), latest_rulings(labels)
    out = {}
    for i in items:
        counted = {a: c for a, c in votes.get(i, {}).items() if c != "skip"}
        top = Counter(counted.values()).most_common()
        if i in ruled:
            status, decision, by = "decided", ruled[i], "adjudicator"
        elif len(counted) < need:
            status, decision, by = "pending", None, None
        elif len(top) > 1 and top[0][1] == top[1][1]:
            status, decision, by = "adjudicate", None, None
        else:
            status, decision, by = "decided", top[0][0], "majority"
        out[i] = {"votes": counted, "decision": decision, "status": status, "by": by}
    return out


def latest_rulings(labels: list[dict]) -> dict:
    """item -> the latest ruling of any adjudicator: each adjudicator's latest row counts (a
    later skip withdraws theirs), and of those still standing the one given last wins."""
    standing = {}
    for seq, row in enumerate(labels):  # oldest first
        if row["role"] == "adjudicator":
            standing.setdefault(row["item"], {})[row["annotator"]] = (seq, row["choice"])
    return {item: max((s, c) for s, c in by.values() if c != "skip")[1]
            for item, by in standing.items() if any(c != "skip" for _, c in by.values())}


def agreement(decisions: dict) -> dict:
    """Krippendorff's alpha (nominal, the `krippendorff` package) and raw percent agreement
    (agreeing pairs of labels on the same item) over items with two labels or more."""
    import numpy as np
    rated = {i: d["votes"] for i, d in decisions.items() if len(d["votes"]) >= 2}
    pairs = agree = 0
    for v in rated.values():
        choices = list(v.values())
        for a in range(len(choices)):
            for b in range(a + 1, len(choices)):
                pairs, agree = pairs + 1, agree + (choices[a] == choices[b])
    out = {"rated_items": len(rated), "percent_agreement": round(agree / pairs, 4) if pairs else None,
           "alpha": None}
    annotators = sorted({a for v in rated.values() for a in v})
    if rated and len({c for v in rated.values() for c in v.values()}) > 1:
        import krippendorff
        data = np.full((len(annotators), len(rated)), np.nan)
        for col, v in enumerate(rated.values()):
            for a, c in v.items():
                data[annotators.index(a), col] = VALUES[c]
        out["alpha"] = round(float(krippendorff.alpha(reliability_data=data,
                                                      level_of_measurement="nominal")), 4)
    elif rated:
        out["alpha"] = 1.0  # every label the same: nothing to disagree on
    return out


def win_rates(items: dict, decisions: dict) -> dict:
    """policy -> its human win rate against the base on decided evaluate items ('second' is
    the tuned policy's reply): wins + ties / 2 over n, with its Wilson interval. Policies are
    told apart by identity (their spec: a trained model's directory is named by its inputs),
    not by their name in evaluate ("trained" is a new model every time it is retrained)."""
    out = {}
    for i, item in items.items():
        d = decisions[i]["decision"]
        if d is None:
            continue
        row = out.setdefault(item.get("spec") or item["policy"],
                             {"policy": item["policy"], "n": 0, "wins": 0, "ties": 0, "losses": 0})
        row["n"] += 1
        row[{"second": "wins", "tie": "ties", "first": "losses"}[d]] += 1
    for row in out.values():
        k = row["wins"] + row["ties"] / 2
        row["win_rate"], row["ci95"] = round(k / row["n"], 4), wilson(k, row["n"])
    return out


def _status_counts(decisions: dict) -> dict:
    c = Counter(d["status"] for d in decisions.values())
    return {"items": len(decisions), "decided": c["decided"], "adjudication_queue": c["adjudicate"],
            "pending": c["pending"],
            "by_adjudicator": sum(d["by"] == "adjudicator" for d in decisions.values())}


def review_metrics(store, need: int) -> dict | None:
    """metrics.json's "review": labels, decisions, agreement (overall and per principle) and
    the human win rate per tuned policy. None when nobody has labelled anything."""
    labels = store.review_labels()
    if not labels:
        return None
    out = {"labels": len(labels), "annotators": sorted({r["annotator"] for r in labels})}
    for mode in ("label", "evaluate"):
        items = store.review_items(mode)
        decisions = decide(items, labels, need)
        out[mode] = {**_status_counts(decisions), **agreement(decisions)}
        if mode == "label":
            principles = sorted({p for item in items.values() for p in item.get("principles", [])})
            out[mode]["per_principle"] = {p: agreement(
                {i: d for i, d in decisions.items() if p in items[i].get("principles", [])})
                for p in principles}
        else:
            out[mode]["win_rate"] = win_rates(items, decisions)
    return out


def reviewed_pairs(store, need: int) -> list[dict]:
    """Decided label-mode items as human preference pairs (the calibration format); a tie
    says neither is preferred and makes no pair."""
    items = store.review_items("label")
    pairs = []
    for i, d in decide(items, store.review_labels(), need).items():
        if d["decision"] in ("first", "second"):
            item = items[i]
            win, lose = ("first", "second") if d["decision"] == "first" else ("second", "first")
            pairs.append({"id": reviewed_id(i), "prompt": item["prompt"],
                          "chosen": item[win], "rejected": item[lose]})
    return sorted(pairs, key=lambda p: p["id"])


def stats_lines(m: dict | None) -> list[str]:
    """The review's lines in summary.md and `cai review stats`."""
    if not m:
        return []
    lab, ev = m["label"], m["evaluate"]
    lines = [f"- human review: {m['labels']} labels by {len(m['annotators'])} annotators; "
             f"{lab['decided']} of {lab['items']} pairs decided ({lab['by_adjudicator']} by "
             f"adjudication, {lab['adjudication_queue']} waiting); agreement between annotators: "
             f"Krippendorff's alpha {_fmt(lab['alpha'])}, {_fmt(lab['percent_agreement'])} of "
             f"label pairs agree ({lab['rated_items']} pairs with 2+ labels)"]
    # alpha on a handful of pairs is noise: metrics.json has every principle, the lines those
    # with 5 pairs or more
    per = [f"{p} {_fmt(a['alpha'])} ({a['rated_items']})"
           for p, a in sorted(lab.get("per_principle", {}).items()) if a["rated_items"] >= 5]
    if per:
        lines.append("- alpha per principle (pairs with 2+ labels): " + ", ".join(per))
    for spec, w in sorted(ev.get("win_rate", {}).items()):
        name = w.get("policy", spec)
        model = spec.rsplit("/", 1)[-1]
        label = name if model == name else f"{name} ({model})"
        lines.append(f"- human win rate of {label} vs base (blind A/B, ties half): "
                     f"{_fmt(w['win_rate'])} [{_fmt(w['ci95'][0])}, {_fmt(w['ci95'][1])}] on "
                     f"{w['n']} decided prompts (wins {w['wins']}, ties {w['ties']}, "
                     f"losses {w['losses']})")
    return lines


def _fmt(x) -> str:
    return "–" if x is None else f"{x:.2f}"
