"""Reward-model ensembles (`train_rm.ensemble: k`): k reward models differing in seed and batch
order. Every reply gets each member's score, their mean and spread (the standard deviation:
how unsure the ensemble is), and one aggregate: the mean, the minimum (the most pessimistic
member) or the mean less `penalty` × spread. Coste et al. (2023) found worst-case and
uncertainty-weighted aggregates of 4–5 members practically remove reward over-optimisation in
best-of-n and RL; GRPO and RLOO take the aggregate as their reward."""

import statistics

# Settings of the ensemble, not of a member: a member's name (and reuse) ignores them.
ENSEMBLE_KEYS = ("ensemble", "aggregate", "penalty")
ENSEMBLE = "train-rm-ensemble"  # the manifest naming the members, for GRPO/RLOO and the report


def member_name(i: int) -> str:
    """Member i (0 is the run's reward model, `rm`; the others `rm-2`, `rm-3`...)."""
    return "rm" if i == 0 else f"rm-{i + 1}"


def aggregate(scores: list[float], how: str = "mean", penalty: float = 1.0) -> float:
    """One reward from the members' scores of one reply."""
    mean = statistics.fmean(scores)
    if how == "min":
        return min(scores)
    if how == "mean_minus_std":
        return mean - penalty * spread(scores)
    return mean


def spread(scores: list[float]) -> float:
    """The members' disagreement on one reply: their population standard deviation."""
    return statistics.pstdev(scores) if len(scores) > 1 else 0.0


def ensemble_report(members: list[list], how: str, penalty: float) -> dict:
    """Held-out accuracy of each member and of the aggregate, and the mean spread, from each
    member's held-out scores ([r(chosen), r(rejected)] per pair, the pairs in the same order)."""
    pairs = list(zip(*members))  # per pair: every member's [chosen, rejected]
    agg = [(aggregate([m[0] for m in p], how, penalty), aggregate([m[1] for m in p], how, penalty))
           for p in pairs]
    spreads = [spread([m[side] for m in p]) for p in pairs for side in (0, 1)]
    return {"k": len(members), "aggregate": how, "penalty": penalty if how == "mean_minus_std" else None,
            "member_accuracy": [_accuracy(m) for m in members],
            "accuracy": _accuracy(agg), "mean_spread": round(statistics.fmean(spreads), 4)
            if spreads else None}


def _accuracy(scores) -> float | None:
    return round(sum(c > r for c, r in scores) / len(scores), 4) if scores else None


def ensemble_reward(paths: list[str], device: str, how: str, penalty: float):
    """A TRL reward function: each member scores the completion, the aggregate is the reward."""
    from cai.training.scoring import reward_function
    members = [reward_function(p, device) for p in paths]

    def reward(prompts, completions, **kwargs) -> list[float]:
        scores = [m(prompts, completions) for m in members]
        return [aggregate(list(s), how, penalty) for s in zip(*scores)]
    reward.__name__ = "reward_model" if len(paths) == 1 else f"reward_ensemble_{how}"
    return reward
