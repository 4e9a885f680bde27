"""`cai plan` (also `cai run --dry-run`): what a run would do, before doing it.

It runs the real stages, in dry-run mode, on a copy of the store in a temporary directory:
cache hits are answered as usual, misses are counted and answered with placeholders, and the
copy is thrown away. So the plan is computed by the same code path as the run itself, makes no
model call and leaves the run directory untouched. Why records are recomputed comes from
comparing each chain with the last finished run (principle edited, assignment moved, new
response).
"""

import sqlite3
import tempfile
from collections import Counter
from pathlib import Path

from constitution import assign_principle

from .client import PLACEHOLDER
from .context import RunContext
from .errors import CaiError
from .stages import STAGES
from .store import DB_NAME, Store
from .training import input_hash, is_complete

# generate .. export: the stages a dry run can execute (training and evaluation are estimated)
DATA_STAGES = list(STAGES)[:list(STAGES).index("export") + 1]


def plan(config) -> dict:
    from .runner import quiet_libraries
    quiet_libraries()
    real_dir = Path(config.run_dir)
    with tempfile.TemporaryDirectory(prefix="cai-plan-") as tmp:
        if (real_dir / DB_NAME).exists():
            with sqlite3.connect(real_dir / DB_NAME) as src, sqlite3.connect(Path(tmp) / DB_NAME) as dst:
                src.backup(dst)  # a consistent snapshot, even while another cai writes
        ctx = RunContext(config.model_copy(update={"run_dir": tmp}), dry_run=True)
        try:
            rows, planned = [], 0
            known = {rid for rid, kind in ctx.store.all_record_ids() if kind == "comparison"}
            for name in DATA_STAGES:
                rows.append(_row(STAGES[name](ctx)))
                if planned and not rows[-1]["model_calls"]:
                    # Built from placeholder answers: the count is a guess, and says so.
                    rows[-1]["why"]["may change: depends on uncached calls"] = 1
                planned += rows[-1]["model_calls"]
            rows += _training_rows(ctx, real_dir, planned)
            by_name = {r["stage"]: r for r in rows}
            by_name["critique"]["why"] = _critique_reasons(ctx)
            by_name["label"]["why"] = _label_reasons(ctx, known)
            by_name["generate"]["why"] = _generate_reasons(ctx)
        finally:
            ctx.close()
    return {"stages": rows, "model_calls": sum(r["model_calls"] for r in rows)}


def _row(stats) -> dict:
    return {"stage": stats.stage, "cached": stats.cached,
            "to_compute": stats.made, "model_calls": stats.calls, "why": {}}


def _training_rows(ctx, real_dir: Path, planned: int) -> list[dict]:
    cfg, rows, retrain_policy, retrain_sft = ctx.config, [], True, False
    with Store(real_dir, lock=False) if (real_dir / DB_NAME).exists() else _NoStore() as real:
        for name, section in (("sft", cfg.train_sft), ("rm", cfg.train_rm),
                              ("policy", cfg.train_policy)):
            if not section.enabled:
                rows.append({"stage": f"train-{name}", "cached": 0, "to_compute": 0,
                             "model_calls": 0, "why": {"disabled": 1}})
                retrain_policy = False if name == "policy" else retrain_policy
                continue
            try:
                done = real.get_artifact(name, input_hash(ctx, name, section))
            except CaiError:  # it starts from a model that is not trained yet (train-sft)
                done = None
            reuse = bool(done and is_complete(done["path"]))
            if planned:  # the dataset depends on answers not known yet: say so, don't guess
                reuse, why = False, {"dataset may change (depends on uncached calls)": 1}
            elif name == "policy" and retrain_sft:  # it starts from the SL-CAI model
                reuse, why = False, {"after the new SL-CAI model": 1}
            else:
                why = {} if reuse else {"dataset or config changed": 1}
            rows.append({"stage": f"train-{name}", "cached": int(reuse), "to_compute": int(not reuse),
                         "model_calls": 0, "why": why})
            retrain_policy = not reuse if name == "policy" else retrain_policy
            retrain_sft = not reuse if name == "sft" else retrain_sft
    e = cfg.evaluate
    trained = 2 * e.limit * (int(retrain_policy) + int(retrain_sft))
    # The base policy's replies are cached after the first run; only new models need calls.
    rows.append({"stage": "evaluate", "cached": None, "to_compute": trained,
                 "model_calls": trained, "why": {"if models are retrained": 1} if trained else {}})
    return rows


class _NoStore:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass

    def get_artifact(self, *a):
        return None


def _last_snapshot(store) -> dict:
    finished = [r for r in store.list_runs() if r["status"] == "finished"
                and r["summary"].get("manifests")]
    return finished[-1]["summary"]["manifests"] if finished else {}


def _generate_reasons(ctx) -> dict:
    prev = _last_snapshot(ctx.store)
    old_prompts = {r["prompt_id"] for r in ctx.store.get_records(prev.get("generate", [])).values()}
    why = Counter()
    for r in ctx.store.get_records(ctx.store.get_manifest("generate")["ids"]).values():
        if r["text"].startswith(PLACEHOLDER):
            why["new prompt" if r["prompt_id"] not in old_prompts
                else "policy, sampling or seed changed"] += 1
    return dict(why)


def _critique_reasons(ctx) -> dict:
    prev = {c["response_id"]: c for c in ctx.store.get_records(
        _last_snapshot(ctx.store).get("critique", [])).values()}
    principles = ctx.constitution.select(ctx.config.critique.tags)
    versions = {p.id: p.version for p in principles}
    why = Counter()
    for chain in ctx.store.get_records(ctx.store.get_manifest("critique")["ids"]).values():
        if not any(r["critique"].startswith(PLACEHOLDER) for r in chain["rounds"]) \
                and not chain.get("failed"):
            continue
        old = prev.get(chain["response_id"])
        why[_why_chain(ctx, chain, old, principles, versions)] += 1
    return dict(why)


def _label_reasons(ctx, known: set) -> dict:
    """Why comparisons are relabelled: a new candidate, or an edited principle in the ensemble.
    `known`: comparison records the store held before the plan (reused, so not explained)."""
    label = ctx.store.get_manifest("label")
    if not label:
        return {}
    previous = _last_snapshot(ctx.store)
    stored = ctx.store.get_records(previous.get("label", []) + previous.get("label-calibration", []))
    key = lambda c: (c["prompt_id"], c["first_id"], c["second_id"])  # noqa: E731
    old = {key(c): c for c in stored.values()}
    why = Counter()
    for rid, c in ctx.store.get_records(label["ids"] + label["meta"]["calibration_ids"]).items():
        if rid in stored or rid in known:
            continue
        was = old.get(key(c))
        if was is None:
            why["new or revised candidate"] += 1
            continue
        before = {x["id"]: x["version"] for x in was["principles"]}
        edited = sorted(x["id"] for x in c["principles"] if before.get(x["id"]) != x["version"])
        why[f"principle '{edited[0]}' edited" if edited else "judge or label settings changed"] += 1
    return dict(why)


def _why_chain(ctx, chain, old, principles, versions) -> str:
    if old is None:
        return "new response"
    for rnd in range(1, ctx.config.critique.rounds + 1):
        new_p = assign_principle(principles, f"{chain['response_id']}/round{rnd}", ctx.config.seed).id
        if rnd > len(old["rounds"]):
            return "more rounds"
        was = old["rounds"][rnd - 1]
        if was["principle"] != new_p:
            return f"assignment moved {was['principle']} -> {new_p}"
        if was["principle_version"] != versions[new_p]:
            return f"principle '{new_p}' edited"
    return "judge, critique settings or an earlier revision changed"


def format_plan(result: dict) -> str:
    lines = [f"{'stage':<13} {'cached':>7} {'to compute':>11} {'model calls':>12}  why"]
    for r in result["stages"]:
        why = ", ".join(f"{k}: {v}" for k, v in sorted(r["why"].items())) or ""
        cached = "-" if r["cached"] is None else r["cached"]
        lines.append(f"{r['stage']:<13} {cached:>7} {r['to_compute']:>11} {r['model_calls']:>12}  {why}")
    lines.append(f"{'total':<13} {'':>7} {'':>11} {result['model_calls']:>12}  (estimate: "
                 "calls after an uncached one are counted as if every verdict says 'violates')")
    return "\n".join(lines)
