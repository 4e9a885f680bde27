"""What evaluate measures about each policy's replies, beyond generating them.

- refusals: `cai.evaluation.detectors` (each detector measured against people) and `cai.evaluation.verdicts`
  (corrected rates, intervals, verdicts);
- win rate: the judge compares a tuned policy's reply with the base's on red-team prompts, in
  both orders (position bias cancels as in labelling);
- reward: the trained reward model's score of every reply, and its correlation with length;
- KL to the start model (the model the policy was trained from, which is the DPO reference
  only with `train_policy.reference: init`): per-token KL(π ‖ π_start) over its own replies,
  exact over the vocabulary at each position (not a sampled estimate).

Judge questions go through the cached client like every call; reward scores and KL are
deterministic functions of weights and texts and are kept in the store under their hash.
"""

from cai.backends.device import pick_device, set_threads
from cai.constitution import assign_principle
from cai.feedback.judge import compare
from cai.hashing import content_hash
from cai.inputs.control_tokens import control_vocabulary, protect
from cai.training.saving import correlation
from cai.training.scoring import score_conversations


def win_rate(ctx, prompts: list[str], tuned: list[str | None], base: list[str | None]) -> dict:
    """How often the judge prefers the tuned reply to the base reply; ties count half, and an
    identical reply is a tie without asking."""
    cfg = ctx.config
    principles = ctx.constitution.select(cfg.label.tags) or ctx.constitution.principles
    done = [(p, t, b) for p, t, b in zip(prompts, tuned, base) if t is not None and b is not None]
    items = [{"principle": assign_principle(principles, f"winrate/{p}", cfg.seed), "prompt": p,
              "first": t, "second": b} for p, t, b in done if t != b]
    results = compare(ctx.judge(), ctx.constitution, items, cfg.judge, cfg.seed,
                      average=cfg.label.average, desc="win rate")
    ps = [r["p"] for r in results if r["p"] is not None] + [0.5] * (len(done) - len(items))
    return {"n": len(ps), "failed": len(results) - len(ps) + len(done) - len(items),
            "identical": len(done) - len(items),
            "win_rate": _share(1.0 if p > 0.5 else 0.5 if p == 0.5 else 0.0 for p in ps),
            "mean_p": _share(ps),
            "position_gap": _share(r["gap"] for r in results if r["gap"] is not None)}


def reward_stats(ctx, rm_dir: str, prompts: list[str], replies: list[str]) -> dict:
    """The reward model's scores of (prompt, reply) and their correlation with reply length."""
    key, scores = _cached(ctx, "eval-rm", (rm_dir, prompts, replies),
                          lambda: _score(ctx, rm_dir, prompts, replies))
    lengths = [len(r) for r in replies]
    n = len(scores)
    mean = sum(scores) / n if n else None
    std = (sum((s - mean) ** 2 for s in scores) / n) ** 0.5 if n else None
    return {"n": n, "mean": _round(mean), "std": _round(std), "scores": scores, "stored": key,
            "lengths": lengths, "length_corr": correlation(lengths, scores)}


def kl_to_reference(ctx, policy_dir: str, ref_dir: str, prompts: list[str],
                    replies: list[str]) -> dict:
    """Mean KL(π ‖ π_start) per reply token and per reply, on the policy's own replies."""
    key, (per_reply, tokens) = _cached(ctx, "eval-kl", (policy_dir, ref_dir, prompts, replies),
                                       lambda: _kl(ctx, policy_dir, ref_dir, prompts, replies))
    # significant digits, not decimals: a few LoRA steps move a policy by KL ~1e-9
    return {"n": len(per_reply), "stored": key,
            "per_token": float(f"{sum(per_reply) / tokens:.4g}") if tokens else None,
            "per_reply": float(f"{sum(per_reply) / len(per_reply):.4g}") if per_reply else None}


def _cached(ctx, name: str, inputs, compute) -> tuple[str, object]:
    """(key, result): a deterministic result kept in the store under the hash of its inputs
    (weights are named by their own input hash in their directory names, so the paths identify
    them). The evaluate manifest lists the keys, so `cai gc` keeps what kept runs used."""
    key = content_hash(name, inputs)
    done = ctx.store.get_artifact(name, key)
    if done is not None:
        return key, done["meta"]["value"]
    value = compute()
    ctx.store.put_artifact(name, key, "", {"value": value})
    return key, value


def _score(ctx, rm_dir, prompts, replies) -> list[float]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    device = _device(ctx)
    model = AutoModelForSequenceClassification.from_pretrained(rm_dir).to(device)
    scores = score_conversations(model, AutoTokenizer.from_pretrained(rm_dir),
                                 [_chat(p, r) for p, r in zip(prompts, replies)], device)
    return [round(x, 6) for x in scores]


def _kl(ctx, policy_dir, ref_dir, prompts, replies) -> tuple[list[float], int]:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from cai.backends.prefix_cache import by_token_budget
    device = _device(ctx)
    tokenizer = AutoTokenizer.from_pretrained(policy_dir)
    policy, ref = (AutoModelForCausalLM.from_pretrained(d).to(device).eval()
                   for d in (policy_dir, ref_dir))
    rows = [r for r in (_reply_tokens(tokenizer, p, r) for p, r in zip(prompts, replies))
            if len(r[1]) > r[0]]
    per_reply = [0.0] * len(rows)
    with torch.no_grad():  # right-padded chunks: a pad is never seen by a real token
        for chunk in by_token_budget([len(ids) for _, ids in rows], KL_BATCH_TOKENS):
            batch = tokenizer.pad({"input_ids": [rows[i][1] for i in chunk]}, padding_side="right",
                                  return_tensors="pt").to(device)
            # logits from the first position that predicts a reply token on: `first` is where
            # they begin in the padded row
            first = min(rows[i][0] for i in chunk) - 1
            keep = batch["input_ids"].shape[1] - first
            lp, lq = (torch.log_softmax(m(**batch, logits_to_keep=keep).logits.float(), -1)
                      for m in (policy, ref))
            for k, i in enumerate(chunk):
                start, n = rows[i][0], len(rows[i][1])
                # the distributions that predicted each reply token
                a, b = (x[k, start - 1 - first:n - 1 - first] for x in (lp, lq))
                per_reply[i] = float((a.exp() * (a - b)).sum())
    return per_reply, sum(len(ids) - start for start, ids in rows)

KL_BATCH_TOKENS = 1024  # padded tokens per KL pass: two [tokens x vocabulary] float32 logits


def _reply_tokens(tokenizer, prompt: str, reply: str) -> tuple[int, list[int]]:
    """(where the reply starts, the ids of the chat with the reply as generated: its tokens and
    the end-of-turn token that stopped it)."""
    words = control_vocabulary(tokenizer)  # the texts read as training reads them
    prefix = tokenizer.apply_chat_template(protect(_chat(prompt), words), add_generation_prompt=True,
                                           tokenize=False)
    start = len(tokenizer(prefix, add_special_tokens=False)["input_ids"])
    ids = tokenizer(prefix + protect(reply, words) + (tokenizer.eos_token or ""),
                    add_special_tokens=False)
    return start, ids["input_ids"]


def _device(ctx) -> str:
    ctx.release_models()  # the generators' memory is better spent here
    set_threads(ctx.config.models.threads)
    return pick_device(ctx.config.models.device)


def _chat(prompt: str, reply: str | None = None) -> list[dict]:
    turns = [{"role": "user", "content": prompt}]
    return turns + ([{"role": "assistant", "content": reply}] if reply is not None else [])


def _share(xs) -> float | None:
    xs = [float(x) for x in xs]
    return _round(sum(xs) / len(xs)) if xs else None


def _round(x):
    return None if x is None else round(x, 4)
