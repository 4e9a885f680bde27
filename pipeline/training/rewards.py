"""Rewards for online RL (GRPO): the trained reward model, the constitution judge, or both.

The judge as reward (direct RLAIF): each completion is asked its principle's question (the
principle drawn by the same rendezvous hash as everywhere, keyed by the prompt) and the reward
is 1 − P(violates) from the Yes/No log-probabilities. Every judge query goes through the cached
client, so it is stored and replayed like any other model call.
"""

from cai.constitution import assign_principle
from cai.constitution.render import render_direct_verdict
from cai.feedback.judge import choice_probs


def reward_principles(ctx) -> list:
    """The principles the judge asks as a reward: those of `label.tags` (all if none match)."""
    return ctx.constitution.select(ctx.config.label.tags) or ctx.constitution.principles


def judge_reward(ctx):
    """A TRL reward function: (prompts, completions) -> 1 − P(violates) per completion."""
    constitution, cfg = ctx.constitution, ctx.config
    principles = reward_principles(ctx)

    def reward(prompts, completions, **kwargs) -> list[float]:
        asks = []
        for prompt, completion in zip(prompts, completions):
            request, reply = _text(prompt), _text(completion)
            p = assign_principle(principles, f"reward/{request}", cfg.seed)
            asks.append(render_direct_verdict(constitution, p, request, reply)[0])
        outcomes = choice_probs(ctx.judge(), asks, ("Yes", "No"), cfg.judge, cfg.seed, "judge reward")
        return [None if o.probs is None else 1.0 - o.probs[0] for o in outcomes]
    reward.__name__ = "constitution_judge"
    return reward


def _text(x) -> str:
    """A conversational turn list (TRL passes messages) or a plain string, as text."""
    if isinstance(x, list):
        return "\n".join(m["content"] for m in x if m.get("role") != "system")
    return x
