"""What people review, and who labels what next.

Two modes of item, each {prompt, first, second, ...}:
- label: the run's AI preference pairs (`pairs` stage), and pairs a user loads (`cai review
  load FILE`, the calibration format); a decided label makes a human preference pair;
- evaluate: the base policy's reply and a tuned policy's reply to the same held-out prompt
  (the `evaluate` stage's replies); decisions give the tuned policy's human win rate.

Items are stored in the run's store when first seen, named by their texts, so a label keeps
pointing at what was shown after a rerun changes the pairs. Which reply is shown as A is a
seeded coin per (item, annotator): random to the annotator (no position is "the AI's pick"),
stable on reload. Nothing in an item names a model to the annotator in evaluate mode.
"""

from cai.hashing import content_hash
from cai.inputs.sources import BadRows, load_human_pairs

CHOICES = ("first", "second", "tie")  # a label's meaning; "skip" is recorded and not counted
UNDONE = "undone"  # a row that withdraws the annotator's label of the item (undo)


def item_id(mode: str, prompt: str, first: str, second: str, *tag) -> str:
    return "item-" + content_hash(mode, prompt, first, second, *tag, n=16)


def reviewed_id(item: str) -> str:
    """The id of the human pair a decided label item becomes (`item-…` -> `review-…`)."""
    return "review-" + item[len("item-"):]


def pair_items(store) -> list[tuple]:
    """(id, 'label', item) for every AI pair of the run's last `pairs` stage."""
    manifest = store.get_manifest("pairs")
    pairs = store.get_records(manifest["ids"]) if manifest else {}
    out = []
    for pid in sorted(pairs):
        p = pairs[pid]
        out.append((item_id("label", p["prompt"], p["chosen"], p["rejected"]), "label", {
            "prompt": p["prompt"], "first": p["chosen"], "second": p["rejected"],
            "source": p["kind"], "pair": pid, "principles": _principles(p),
            "judge_p_first": p.get("p_chosen"), "critiques": _critiques(p)}))
    return out


def _principles(pair: dict) -> list[str]:
    prov = pair.get("provenance", {})
    if pair["kind"] == "critique-revision":
        return sorted({r["principle"] for r in prov.get("rounds", []) if r.get("violates")})
    return sorted({x["id"] for x in prov.get("principles", []) if x.get("id")})


def _critiques(pair: dict) -> list[dict]:
    """The critique → revision chain behind a pair, shown on demand."""
    return [{"principle": r.get("principle"), "critique": r.get("critique"),
             "p_violates": r.get("p_violates")}
            for r in pair.get("provenance", {}).get("rounds", []) if r.get("critique")]


def loaded_items(path: str, bad: BadRows | None = None) -> list[tuple]:
    """(id, 'label', item) for the pairs of a calibration-format file; their chosen/rejected
    sides are only two replies to label (the file's preference is not shown or used)."""
    return [(item_id("label", p["prompt"], p["chosen"], p["rejected"]), "label",
             {"prompt": p["prompt"], "first": p["chosen"], "second": p["rejected"],
              "source": "loaded", "file": str(path), "principles": [], "critiques": []})
            for p in load_human_pairs(path, bad)]


def evaluate_items(store) -> list[tuple]:
    """(id, 'evaluate', item): base vs each tuned policy on every evaluated prompt where both
    replied and the replies differ (identical replies need no human)."""
    manifest = store.get_manifest("evaluate")
    meta = (manifest or {}).get("meta", {})
    prompts, replies = meta.get("prompts") or {}, meta.get("replies") or {}
    base, out = replies.get("base", {}), []
    for policy, by_set in replies.items():
        if policy == "base":
            continue
        spec = meta.get("policies", {}).get(policy, policy)
        for set_name, texts in by_set.items():
            for prompt, mine, theirs in zip(prompts.get(set_name, []), texts, base.get(set_name, [])):
                if mine and theirs and mine != theirs:
                    out.append((item_id("evaluate", prompt, theirs, mine, spec), "evaluate", {
                        "prompt": prompt, "first": theirs, "second": mine, "policy": policy,
                        "spec": spec, "set": set_name}))
    return out


def refresh(store) -> dict:
    """Store the run's current items (new ones only) and retire the ones a rerun replaced
    (loaded pairs stay until labelled); {mode: count} of items in the queue now."""
    current = pair_items(store) + evaluate_items(store)
    store.put_review_items(current)
    ids = {i for i, _, _ in current}
    stale = {i for mode in ("label", "evaluate") for i, item in store.review_items(mode).items()
             if i not in ids and item.get("source") != "loaded"}
    store.set_review_queue(ids, stale)
    return {mode: len(store.review_items(mode, queued=True)) for mode in ("label", "evaluate")}


def shown_swapped(item: str, annotator: str) -> bool:
    """Whether this annotator sees `second` as A: a seeded coin, stable for the pair."""
    return int(content_hash("review-order", item, annotator), 16) % 2 == 1


def to_choice(key: str, swapped: bool) -> str:
    """The annotator's key (a, b, tie, skip) as what it means about the item."""
    if key in ("tie", "skip"):
        return key
    first = (key == "a") != swapped
    return "first" if first else "second"


def latest(labels: list[dict], role: str = "annotator") -> dict:
    """item -> {annotator: choice} of `role`'s labels, the latest row of each annotator; an
    `undone` row withdraws theirs (the item is theirs to label again)."""
    out = {}
    for row in labels:
        if row["role"] != role:
            continue
        if row["choice"] == UNDONE:
            out.get(row["item"], {}).pop(row["annotator"], None)
        else:
            out.setdefault(row["item"], {})[row["annotator"]] = row["choice"]
    return {item: votes for item, votes in out.items() if votes}


def next_item(items: dict, labels: list[dict], annotator: str, need: int,
              worth: dict | None = None) -> str | None:
    """The item this annotator labels next: one they have not labelled (or skipped) that has
    fewer than `need` labels, the most-labelled first (finish items before starting new ones),
    then the most worth a label (`cai.review.routing`, where given), then in a fixed seeded
    order, so annotators converge on the same items."""
    votes = latest(labels)
    counted = {i: sum(c != "skip" for c in v.values()) for i, v in votes.items()}
    open_items = [i for i in items
                  if annotator not in votes.get(i, {}) and counted.get(i, 0) < need]
    if not open_items:
        return None
    worth = worth or {}
    return min(open_items, key=lambda i: (-counted.get(i, 0), -worth.get(i, (0.0,))[0],
                                          content_hash("review", i)))
