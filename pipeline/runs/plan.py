"""`cai plan` (also `cai run --dry-run`): what a run would do, before doing it.

It runs the real stages, in dry-run mode and through the run's own stage reuse (a stage whose
declared inputs are unchanged is skipped here as in the run), on a copy of the store in a
temporary directory (read from the run's store in read-only mode): cache hits are answered as
usual, misses are counted and answered with placeholders, and the copy is thrown away. So the
plan is computed by the same code path as the run itself, makes no model call, fetches no model
(models are named by identity alone) and leaves the run directory untouched. Evaluate's calls are counted the same
way, with each model a run would train anew standing in as a model whose every call misses.
The count is an upper bound as long as every judge answer parses at the first try (a retried
answer is one more call each, at most `judge.parse_retries`). Why records are recomputed comes from
comparing each chain with the last finished run (principle edited, assignment moved, new
response).
"""

import tempfile
from collections import Counter
from pathlib import Path

from cai.backends.client import PLACEHOLDER
from cai.constitution import assign_principle
from cai.errors import CaiError
from cai.runs.estimate import estimate, past_timings
from cai.stages import DATA_STAGES, STAGES
from cai.stages.context import RunContext, StageStats
from cai.stages.reuse import run_stage
from cai.store.core import copy_store
from cai.store.summaries import listed
from cai.training.base import policy_init
from cai.training.inputs import input_hash
from cai.training.saving import is_complete


def plan(config) -> dict:
    from cai.log import quiet_libraries
    quiet_libraries()
    timings = _past_timings(config.run_dir)  # read where a damaged row is named as the user's
    with tempfile.TemporaryDirectory(prefix="cai-plan-") as tmp:
        copy_store(config.run_dir, tmp)
        ctx = RunContext(config.model_copy(update={"run_dir": tmp}), dry_run=True)
        try:
            rows, planned = [], 0
            known = {rid for rid, kind in ctx.store.all_record_ids() if kind == "comparison"}
            for name in DATA_STAGES:  # the run's own path: a stage whose inputs are unchanged skips
                rows.append(_row(run_stage(ctx, name, STAGES[name])))
                if planned and not rows[-1]["model_calls"]:
                    # Built from placeholder answers: the count is a guess, and says so.
                    rows[-1]["why"]["may change: depends on uncached calls"] = 1
                planned += rows[-1]["model_calls"]
            training, retrained = _training_rows(ctx, planned)
            rows += training + [_evaluate_row(ctx, retrained)]
            by_name = {r["stage"]: r for r in rows}
            for name, reasons in (("critique", lambda: _critique_reasons(ctx)),
                                  ("label", lambda: _label_reasons(ctx, known)),
                                  ("generate", lambda: _generate_reasons(ctx))):
                if not by_name[name]["why"]:  # a skipped stage says so instead
                    by_name[name]["why"] = _with_unexplained(reasons(), by_name[name]["to_compute"])
            for row in rows[:len(DATA_STAGES)]:
                if row["to_compute"] and not row["why"]:
                    row["why"] = {"its inputs changed": row["to_compute"]}
            seconds = estimate(rows, timings)
        finally:
            ctx.close()
    return {"stages": rows, "model_calls": sum(r["model_calls"] for r in rows), "seconds": seconds}


def _past_timings(run_dir) -> dict:
    from cai.store.core import DB_NAME, ReadOnlyStore
    if not (Path(run_dir) / DB_NAME).exists():
        return {}
    with ReadOnlyStore(run_dir) as store:
        return past_timings(store)


def plan_iterations(config) -> list[dict]:
    """Per iteration: its plan, or (where its policy, the previous iteration's, would be trained
    anew) why everything from generate on is to compute."""
    from cai.runs.iterations import iteration_config
    from cai.store.core import DB_NAME, ReadOnlyStore
    from cai.store.iterations import iteration_dir
    out, previous = [], None
    for k in range(1, config.iterations.count + 1):
        if k > 1 and previous is None:
            out.append({"iteration": k, "plan": None,
                        "why": f"everything: its policy (iteration {k - 1}'s) is trained anew"})
            continue
        cfg = iteration_config(config, k, previous)
        result = plan(cfg)
        out.append({"iteration": k, "plan": result})
        policy = next((r for r in result["stages"] if r["stage"] == "train-policy"), None)
        d, previous = iteration_dir(cfg.iterations.root, k), None
        if policy and policy["to_compute"] == 0 and (d / DB_NAME).exists():
            with ReadOnlyStore(d) as store:
                manifest = store.get_manifest("train-policy")
            previous = manifest["meta"]["path"] if manifest else None
    return out


def format_iterations(plans: list[dict]) -> str:
    return "\n\n".join(f"== iteration {p['iteration']}\n"
                        + (format_plan(p["plan"]) if p["plan"] else p["why"]) for p in plans)


def _row(stats) -> dict:
    why = {"inputs unchanged: skipped": 1} if stats.reused_from is not None else {}
    return {"stage": stats.stage, "cached": stats.cached,
            "to_compute": stats.made, "model_calls": stats.calls, "why": why}


def _training_rows(ctx, planned: int) -> tuple[list[dict], list[str]]:
    """A row per training stage, and the evaluated policies a run would train anew."""
    cfg, rows, retrained = ctx.config, [], []
    for name, section in (("sft", cfg.train_sft), ("rm", cfg.train_rm),
                          ("policy", cfg.train_policy)):
        if not section.enabled:
            rows.append({"stage": f"train-{name}", "cached": 0, "to_compute": 0,
                         "model_calls": 0, "why": {"disabled": 1}})
            continue
        try:
            done = ctx.store.get_artifact(name, input_hash(ctx, name, section))
        except CaiError:  # it starts from a model that is not trained yet (train-sft)
            done = None
        reuse = bool(done and is_complete(done["path"]))
        if name == "policy" and "sft" in retrained and policy_init(cfg) == "sft":
            reuse, why = False, {"after the new SL-CAI model": 1}
        elif reuse:  # its part of the dataset came out the same, placeholders and all
            why = {}
        elif planned:  # its part depends on answers not known yet: say so, don't guess
            why = {"dataset may change (depends on uncached calls)": 1}
        else:
            why = {"dataset or config changed": 1}
        rows.append({"stage": f"train-{name}", "cached": int(reuse), "to_compute": int(not reuse),
                     "model_calls": 0, "why": why})
        if not reuse and name != "rm":
            retrained.append(name)
    return rows, retrained


def _evaluate_row(ctx, retrained: list[str]) -> dict:
    """Evaluate's model calls, counted by its own code in dry run: replies of every policy
    (a policy to be trained anew stands in as a model whose every call is a miss), the judge's
    refusal questions and win rates. Reward scores and KL make no model calls."""
    from cai.stages import evaluate
    names = {"sft": "sft", "policy": "trained"}
    planned = {names[n]: ctx.planned_model(names[n]) for n in retrained}
    models = evaluate.policies(ctx, planned)
    stats, before = StageStats("evaluate"), ctx.calls_made()
    evaluate.judge_replies(ctx, stats, evaluate.prompt_sets(ctx), models)
    calls = ctx.calls_made() - before
    why = {f"new model: {name}": 1 for name in planned}
    if calls and not planned:
        why["uncached replies or judge answers"] = 1
    return {"stage": "evaluate", "cached": stats.cached, "to_compute": stats.made,
            "model_calls": calls, "why": why}


def _with_unexplained(why: dict, to_compute: int) -> dict:
    """Records written anew with no new call (e.g. a chain judged under an edited principle
    whose answers did not change, now naming its new version) are said to be so."""
    rest = to_compute - sum(why.values())
    return {**why, "rewritten from cached answers": rest} if rest > 0 else why


def _last_snapshot(store) -> dict:
    finished = [r for r in store.list_runs() if r["status"] == "finished"
                and r["summary"].get("manifests")]
    return finished[-1]["summary"]["manifests"] if finished else {}


def _generate_reasons(ctx) -> dict:
    prev = _last_snapshot(ctx.store)
    old = ctx.store.get_records(listed(ctx.store, prev.get("generate")))
    old_prompts = {r["prompt_id"] for r in old.values()}
    why = Counter()
    for r in ctx.store.get_records(ctx.store.get_manifest("generate")["ids"]).values():
        if r["text"].startswith(PLACEHOLDER):
            why["new prompt" if r["prompt_id"] not in old_prompts
                else "policy, sampling or seed changed"] += 1
    return dict(why)


def _critique_reasons(ctx) -> dict:
    prev = {c["response_id"]: c for c in ctx.store.get_records(
        listed(ctx.store, _last_snapshot(ctx.store).get("critique"))).values()}
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
    stored = ctx.store.get_records(listed(ctx.store, previous.get("label"))
                                     + listed(ctx.store, previous.get("label-calibration")))
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
    lines = [f"{'stage':<13} {'cached':>7} {'to compute':>11} {'model calls':>12} {'est. s':>7}  why"]
    for r in result["stages"]:
        why = ", ".join(f"{k}: {v}" for k, v in sorted(r["why"].items())) or ""
        cached = "-" if r["cached"] is None else r["cached"]
        est = "?" if r.get("seconds") is None else f"{r['seconds']:.0f}"
        lines.append(f"{r['stage']:<13} {cached:>7} {r['to_compute']:>11} {r['model_calls']:>12} "
                     f"{est:>7}  {why}")
    total = result.get("seconds")
    est = "?" if total is None else f"{total:.0f}"
    lines.append(f"{'total':<13} {'':>7} {'':>11} {result['model_calls']:>12} {est:>7}  (an upper bound "
                 "if every judge answer parses at once: calls after an uncached one are counted "
                 "as if every verdict says 'violates')")
    lines.append("est. s: from this run directory's past runs (seconds per model call of each "
                 "stage, each training's time)" if total is not None else
                 "est. s: ? where no past run in this directory timed that work")
    return "\n".join(lines)
