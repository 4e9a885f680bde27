"""Did the run's AI data help? The reward model trained on the blend vs the same reward model
trained on the human pairs alone, both scored on the same held-out human pairs.

The difference in held-out accuracy comes with a 95 % interval from a paired bootstrap over
the held-out pairs (each resample scores both models on the same pairs), so a difference the
held-out set is too small to show says so.
"""

from cai.evaluation.scorecard import fmt
from cai.hashing import content_hash
from cai.stats import roc_auc

BOOTSTRAP = 2000
MANIFEST = "train-rm-ai-value"  # the last comparison, named by what it was computed from


def remembered_ai_value(store, with_ai: list, human_only: list, seed: int) -> dict:
    """`ai_value`, kept in the store under its inputs: a rerun with both reward models reused
    recomputes nothing (the bootstrap and scikit-learn's import cost seconds)."""
    key = content_hash(with_ai, human_only, seed)
    done = store.get_manifest(MANIFEST)
    if done is not None and done["ids"] == [key]:
        return done["meta"]
    value = ai_value(with_ai, human_only, seed)
    store.put_manifest(MANIFEST, [key], value)
    return value


def ai_value(with_ai: list, human_only: list, seed: int) -> dict:
    """Accuracy and ROC-AUC of both reward models on held-out pairs ((r(chosen), r(rejected))
    per pair, in the same order), the accuracy difference and its 95 % bootstrap interval."""
    import numpy as np
    a = np.array([c > r for c, r in with_ai], dtype=float)
    h = np.array([c > r for c, r in human_only], dtype=float)
    if not len(a):
        return {"n": 0}
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(a), size=(BOOTSTRAP, len(a)))
    diffs = a[draws].mean(axis=1) - h[draws].mean(axis=1)
    return {"n": len(a), "accuracy": round(float(a.mean()), 4),
            "accuracy_human_only": round(float(h.mean()), 4),
            "difference": round(float(a.mean() - h.mean()), 4),
            "ci95": [round(float(np.quantile(diffs, q)), 4) for q in (0.025, 0.975)],
            "auc": roc_auc(with_ai), "auc_human_only": roc_auc(human_only)}


def ai_value_lines(v: dict | None) -> list[str]:
    """Did the AI data help? In one line, with its interval."""
    if not v or not v.get("n"):
        return []
    if v["same_model"]:
        return [f"- AI data: none counted (the blend is the human pairs alone), so the reward "
                f"model is the human-only one: held-out accuracy {fmt(v['accuracy'])} on "
                f"{v['n']} pairs"]
    verdict = ("helped" if v["ci95"][0] > 0 else "hurt" if v["ci95"][1] < 0
               else "made no difference the held-out pairs can show")
    return [f"- AI data {verdict}: reward model held-out accuracy {fmt(v['accuracy'])} with it, "
            f"{fmt(v['accuracy_human_only'])} on the human pairs alone (difference "
            f"{v['difference']:+.3f}, 95 % interval [{v['ci95'][0]:+.3f}, {v['ci95'][1]:+.3f}], "
            f"n = {v['n']}; ROC-AUC {fmt(v['auc'])} vs {fmt(v['auc_human_only'])}). The interval "
            "covers the held-out pairs, not training randomness: one seed each, and reseeding "
            "alone moved held-out accuracy by ±0.06 (bench/RESULTS.md)"]
