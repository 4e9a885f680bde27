"""The evaluation table as rows of cells: base vs each trained policy. `cai run` prints it,
summary.md and report.html show it; each formats these cells its own way. Every refusal rate is
the leading detector's, corrected for its measured error (cai.evaluation.verdicts)."""

from cai.evaluation.verdicts import SETS

HEADER = ["policy", "harmful: refused ↑", "unsafe contrast: refused ↑",
          "safe: refused (over-refusal) ↓", "win rate vs base", "RM score", "KL/token to start"]
REFUSAL_SETS = tuple(SETS)  # harmful, unsafe, safe


def fmt(x):
    return "–" if x is None else f"{x:.2f}" if isinstance(x, float) else str(x)


def rate_cell(cell: dict | None) -> str:
    """'0.12 [0.05, 0.21] n=40, seen 0.15': the leading detector's corrected rate, its interval,
    n and the rate as the detector saw it."""
    if not cell or not cell.get("n"):
        return "–"
    lo, hi = cell["ci95"] or (None, None)
    seen = f", seen {fmt(cell['observed'])}" if cell.get("corrected") else ""
    return f"{fmt(cell['rate'])} [{fmt(lo)}, {fmt(hi)}] n={cell['n']}{seen}"


def evaluation_rows(m: dict) -> list[list[str]]:
    """One row per policy: refusal rates as `rate_cell` writes them."""
    ev = m.get("evaluation") or {}
    rows = []
    for name, row in (ev.get("table") or {}).items():
        reward, kl = (ev.get("reward") or {}).get(name, {}), (ev.get("kl") or {}).get(name, {})
        win = (ev.get("win_rate") or {}).get(name, {})
        rows.append([name, *(rate_cell(row.get(s)) for s in REFUSAL_SETS),
                     fmt(win.get("win_rate")), fmt(reward.get("mean")),
                     "–" if kl.get("per_token") is None else format(kl["per_token"], ".2g")])
    return rows


def verdict_lines(m: dict) -> list[str]:
    """The evaluation's answer first: one line per comparison, and what it could detect."""
    ev = m.get("evaluation") or {}
    if not ev.get("verdicts"):
        return []
    can = ", ".join(f"{s} {100 * d:.0f}" for s, d in (ev.get("detectable") or {}).items())
    return [f"- {v['line']}" for v in ev["verdicts"]] + (
        [f"- smallest change this evaluation detects (80 % power, points): {can}"] if can else [])


ITERATION_HEADER = ["iteration", "harmful: refusal ↑", "safe: compliance ↑",
                    "judge win rate vs previous", "RM score", "reply chars", "KL/token to previous",
                    "AI pairs"]


def iteration_rows(m: dict) -> list[list[str]]:
    """One row per iteration: its tuned policy against the policy it started from."""
    return [[str(r["iteration"]) if r["iteration"] else "0 (base)", fmt(r["refusal"]),
             fmt(r["compliance"]), fmt(r["win_rate"]), fmt(r["rm_score"]), fmt(r["reply_chars"]),
             "–" if r["kl"] is None else format(r["kl"], ".2g"), fmt(r["pairs"])]
            for r in m.get("iterations") or []]
