"""The evaluation table as rows of cells: base vs each trained policy. `cai run` prints it,
summary.md and report.html show it; each formats these cells its own way."""

HEADER = ["policy", "harmful: refusal ↑", "safe: compliance ↑", "judge = string",
          "win rate vs base", "RM score", "KL/token"]


def fmt(x):
    return "–" if x is None else f"{x:.2f}" if isinstance(x, float) else str(x)


def evaluation_rows(m: dict) -> list[list[str]]:
    """One row per policy. Rates are the judge's, the string-match detector's in brackets."""
    ev = m.get("evaluation") or {}
    rows = []
    for name, row in (ev.get("table") or {}).items():
        h, s = row["harmful"], row["safe"]
        agree = [x for x in (h.get("agreement"), s.get("agreement")) if x is not None]
        reward, kl = (ev.get("reward") or {}).get(name, {}), (ev.get("kl") or {}).get(name, {})
        win = (ev.get("win_rate") or {}).get(name, {})
        rows.append([
            name,
            f"{fmt(h.get('refusal_rate'))} ({fmt(h.get('refusal_rate_string'))}) n={h['n']}",
            f"{fmt(s.get('compliance_rate'))} ({fmt(s.get('compliance_rate_string'))}) n={s['n']}",
            fmt(sum(agree) / len(agree)) if agree else "–",
            fmt(win.get("win_rate")), fmt(reward.get("mean")),
            "–" if kl.get("per_token") is None else format(kl["per_token"], ".2g")])
    return rows


ITERATION_HEADER = ["iteration", "harmful: refusal ↑", "safe: compliance ↑",
                    "judge win rate vs previous", "RM score", "reply chars", "KL/token to previous",
                    "AI pairs"]


def iteration_rows(m: dict) -> list[list[str]]:
    """One row per iteration: its tuned policy against the policy it started from."""
    return [[str(r["iteration"]) if r["iteration"] else "0 (base)", fmt(r["refusal"]),
             fmt(r["compliance"]), fmt(r["win_rate"]), fmt(r["rm_score"]), fmt(r["reply_chars"]),
             "–" if r["kl"] is None else format(r["kl"], ".2g"), fmt(r["pairs"])]
            for r in m.get("iterations") or []]
