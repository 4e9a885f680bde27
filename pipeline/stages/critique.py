"""critique ⇄ revise: the judge critiques each response against a principle, then revises it.

response records -> critique and revision records -> one chain record per response
    cai critique --set critique.rounds=3

Per round, each chain gets a principle by weighted rendezvous hashing over principle ids, keyed
by (seed, response id, round): editing, adding or removing one principle moves only the records
that principle wins or loses. The judge writes a critique, answers "does it violate?" as a
Yes/No choice scored by log-probabilities (or by vote, see `judge.scoring`), and, when it does,
writes a revision. A critique must parse (`cai.feedback.structured`: not empty, not looping, not the
prompt read back); one that does not is asked again up to `judge.parse_retries` times, then the
chain is recorded as failed with the reason and counted. Revisions that
fail a filter in `cai.feedback.filters` (empty, looping, a copy of the original, of the critique, of
the prompt or of the few-shot example) are dropped and counted by reason; the next round then
critiques the previous text again.
"""

from collections import Counter

from cai.backends import SamplingParams
from cai.constitution import assign_principle, render_critique, render_revision
from cai.constitution.render import examples_for
from cai.errors import CaiError
from cai.feedback.filters import check_revision, clean_revision
from cai.feedback.judge import verdicts
from cai.feedback.structured import generate_parsed, parse_text
from cai.hashing import calls_key, content_hash
from cai.stages.common import manifest_records, save_records
from cai.stages.context import StageStats, timed
from cai.stages.reads import Reads

# What this stage reads (cai.stages.reads): its fingerprint and `cai plan` follow it.
READS = Reads(config=("seed", "critique", "judge", "models.judge"), models=("judge",),
              stages=("generate",), constitution=True)


@timed("critique")
def run(ctx) -> StageStats:
    cfg, stats = ctx.config, StageStats("critique")
    constitution = ctx.constitution
    principles = constitution.select(cfg.critique.tags)
    if not principles:
        raise CaiError(f"{cfg.constitution}: no principle has any of the tags {cfg.critique.tags} "
                       "(critique.tags)")
    out, counts = ctx.store.manifest_writer("critique"), Counter()
    for chunk in manifest_records(ctx, "generate"):
        chains = [{"response_id": rid, "prompt_id": r["prompt_id"], "prompt": r["prompt"],
                   "original": r["text"], "current": r["text"], "current_id": rid, "rounds": []}
                  for rid, r in chunk]
        for rnd in range(1, cfg.critique.rounds + 1):
            _round(ctx, stats, constitution, principles, chains, rnd)
        save_records(ctx, stats, [_chain_record(c) for c in chains], out)
        counts.update(chains=len(chains),
                      violations=sum(any(x["violates"] for x in c["rounds"]) for c in chains),
                      revised=sum(c["current_id"] != c["response_id"] for c in chains))
    out.finish({"rounds": cfg.critique.rounds})
    stats.metrics = {k: counts[k] for k in ("chains", "violations", "revised")}
    return stats


def _round(ctx, stats, constitution, principles, chains, rnd):
    cfg, judge = ctx.config, ctx.judge()
    live = [c for c in chains if not c.get("failed")]
    for c in live:
        c["principle"] = assign_principle(principles, f"{c['response_id']}/round{rnd}", cfg.seed)
    greedy = cfg.critique.temperature
    crit_params = SamplingParams(cfg.critique.critique_max_new_tokens, greedy, 1.0)
    texts, failures, keys = generate_parsed(
        judge, [render_critique(constitution, c["principle"], c["prompt"], c["current"])
                for c in live], crit_params, parse_text, cfg.judge.parse_retries, cfg.seed,
        f"critique r{rnd}", schema="judge_text")
    for c, text, failure, calls in zip(live, texts, failures, keys):
        c["critique"], c["critique_call"] = text, calls_key(calls)
        c["critique_attempts"] = len(calls)  # 1, or more where an answer did not parse
        if failure:
            _fail(c, stats, "critique", failure)
    live = [c for c in live if not c.get("failed")]
    items = [{"principle": c["principle"], "prompt": c["prompt"], "response": c["current"],
              "critique": c["critique"]} for c in live]
    probs, raw, outcomes = verdicts(judge, constitution, items, cfg.judge, cfg.seed,
                                    cfg.critique.calibrate, desc=f"verdict r{rnd}")
    violators = []
    for c, p, p_raw, o in zip(live, probs, raw, outcomes):
        if p is None:
            _fail(c, stats, "verdict", o.error)
            continue
        c["p_violates"], c["p_violates_raw"], c["verdict_call"] = p, p_raw, o.key
        c["verdict_method"] = o.provenance()
        c["violates"] = p > cfg.critique.violation_threshold
        if c["violates"]:
            violators.append(c)
    _revise(ctx, stats, constitution, violators, rnd)
    _record_round(ctx, stats, [c for c in live if not c.get("failed")], rnd)


def _fail(chain, stats, step: str, failure: str):
    """A chain that cannot go on: the reason is kept on its record and counted."""
    if failure == "call_failed":
        chain["failed"] = f"{step}_failed"
    else:
        chain["failed"] = f"{step}_unparseable: {failure}"
    stats.drop(chain["failed"].split(":")[0])


def _revise(ctx, stats, constitution, violators, rnd):
    cfg = ctx.config
    params = SamplingParams(cfg.critique.revision_max_new_tokens, cfg.critique.temperature, 1.0)
    revs = ctx.judge().generate(
        [render_revision(constitution, c["principle"], c["prompt"], c["current"], c["critique"])
         for c in violators], params, seed=cfg.seed, desc=f"revise r{rnd}")
    for c, res in zip(violators, revs):
        text = clean_revision(res.text)
        c["revision"], c["revision_call"] = text, res.key
        shown = [e.revision for e in examples_for(constitution, c["principle"])]
        # A dry run's placeholder counts as a kept revision: what follows it (new critiques, a
        # revision candidate to compare) is then counted too, so the plan is an upper bound.
        c["revision_status"] = ("revision_failed" if res.error else "kept" if res.planned
                                else check_revision(text, c["current"], c["critique"], shown) or "kept")
        if c["revision_status"] != "kept":
            stats.drop(c["revision_status"])


def _record_round(ctx, stats, done, rnd):
    records = []
    for c in done:
        p = c["principle"]
        # Named by the calls and by how their answers were read: P(violates) depends on both.
        crit_id = "crit-" + content_hash(c["current_id"], c["critique_call"], c["verdict_call"],
                                         _verdict_settings(ctx.config))
        entry = {"round": rnd, "principle": p.id, "principle_version": p.version,
                 "critique": c["critique"], "p_violates": round(c["p_violates"], 6),
                 "p_violates_raw": round(c["p_violates_raw"], 6),
                 "violates": c["violates"], "critique_id": crit_id, "revision_status": None,
                 "critique_attempts": c["critique_attempts"],
                 **({"verdict": c["verdict_method"]} if c["verdict_method"]["method"] != "logprobs"
                    else {})}
        records.append((crit_id, "critique", {**entry, "parent": c["current_id"],
                                              "model": ctx.config.models.judge}))
        if c["violates"]:
            rev_id = "rev-" + content_hash(crit_id, c["revision_call"])
            entry.update(revision_status=c["revision_status"], revision=c["revision"],
                         revision_id=rev_id)
            records.append((rev_id, "revision", {"critique_id": crit_id, "text": c["revision"],
                                                 "status": c["revision_status"]}))
            if c["revision_status"] == "kept":
                c["current"], c["current_id"] = c["revision"], rev_id
        c["rounds"].append(entry)
    ctx.store.put_records(records)  # one transaction per round: a crash loses at most a round


def _verdict_settings(cfg) -> dict:
    return {"calibrate": cfg.critique.calibrate, "threshold": cfg.critique.violation_threshold}


def _chain_record(c) -> tuple:
    # Named by every critique and revision in it: a revision prompt edit changes only the
    # revision (the critique is cached), and the chain must change with it.
    ids = [(r["critique_id"], r.get("revision_id")) for r in c["rounds"]]
    cid = "chain-" + content_hash(c["response_id"], ids, c.get("failed"))
    return (cid, "chain", {
        "response_id": c["response_id"], "prompt_id": c["prompt_id"], "prompt": c["prompt"],
        "original": c["original"], "final": c["current"], "final_id": c["current_id"],
        "rounds": c["rounds"], "failed": c.get("failed"),
        # what the failed step cost: critique answers asked (and retried) before giving up
        **({"failed_attempts": c["critique_attempts"]} if c.get("failed") else {})})
