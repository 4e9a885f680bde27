"""report.html: one self-contained page (plots inlined as PNG) of what a run produced.

Plots (matplotlib, Agg backend): judge-human agreement per principle, the reliability diagram,
reward-model scores of held-out chosen vs rejected replies, reward vs reply length, training
loss curves, reward-model scores of each policy's replies, refusal vs compliance per policy.
The evaluation table (the one `cai run` prints) sits above them. Then a sample of pairs with
the critique and the revision side by side. The page is drawn from metrics.json's content
alone. It records its own health for tests and people alike: every image that fails to load,
and any script error, is counted in `data-*` attributes of <body>.
"""

import html

from cai.evaluation.scorecard import HEADER, ITERATION_HEADER, evaluation_rows, iteration_rows
from cai.evaluation.verdicts import TITLES
from cai.publish.card import effective_line, mode_lines
from cai.report.figures import PlotCache
from cai.report.headline import answer_lines, meta_lines
from cai.review.agreement import stats_lines
from cai.stages.freshness import stale_lines


def render(m: dict, plots_dir=None) -> str:
    """The page for a run's metrics (as `report.collect` makes them). With `plots_dir` each
    plot is kept there under the hash of what it shows, so a rerun that changed nothing draws
    nothing (and imports no matplotlib)."""
    cache = PlotCache(plots_dir)
    figures = [(title, cache.png(title, make, data)) for title, make, data in _plots(m)
               if data is not None]
    cache.keep_only_used()
    answers = "".join(f"<li>{html.escape(line[2:])}</li>" for line in answer_lines(m))
    # the lines are Markdown for summary.md: code spans lose their backticks here
    meta = "".join(f'<p class="meta">{html.escape(line.replace("`", ""))}</p>'
                   for line in meta_lines(m))
    review = "".join(f"<p class=\"review\">{html.escape(line[2:])}</p>"
                     for line in stats_lines(m.get("review")))
    stale = "".join(f"<p class=\"stale\">{html.escape(line[2:])}</p>"
                    for line in stale_lines(m.get("stale")))
    body = ['<h1>cai run report</h1>', meta, '<section id="answers"><h2>The answers</h2>'
            f'<ul>{answers}</ul></section>', stale, f"<p>{_intro(m)}</p>", _evaluation_html(m),
            f"<h2>Human review</h2>{review}" if review else ""]
    for title, png in figures:
        body.append(f'<figure><img class="plot" alt="{html.escape(title)}" '
                    f'src="data:image/png;base64,{png}"><figcaption>{html.escape(title)}'
                    "</figcaption></figure>")
    body.append(_pairs_html(m.get("sample_pairs") or []))
    return PAGE.format(body="\n".join(body), n=len(figures))


def _intro(m: dict) -> str:
    c, a = m["counts"], m.get("judge_agreement") or {}
    cal = a.get("calibrated") or {}
    return html.escape(
        f"Constitution {m['constitution']['name']} v{m['constitution']['version']}; policy "
        f"{m['models']['policy']}, judge {m['models']['judge']}. {c['responses']} responses, "
        f"{c.get('comparisons', 0)} comparisons, {c['ai_pairs']} AI pairs. Judge vs humans on "
        f"{a.get('n', 0)} human training pairs (cross-fitted): accuracy "
        f"{(a.get('raw') or {}).get('accuracy')} raw, "
        f"{cal.get('accuracy')} calibrated, trust {a.get('overall_trust')}. "
        f"{effective_line(c.get('blend'))}" + "".join(f" {line[2:]}." for line in mode_lines(a)))


def _evaluation_html(m: dict) -> str:
    rows, its = evaluation_rows(m), iteration_rows(m)
    out = "" if not rows else (
        "<h2>Evaluation</h2>" + _table(HEADER, rows)
        + "<p>Refusal rates of the leading detector, corrected for its measured error, with "
          "their 95 % interval and n (the detectors' agreement with people: summary.md).</p>")
    if its:
        out += "<h2>Iterations</h2>" + _table(ITERATION_HEADER, its) + (
            "<p>Each iteration's tuned policy against the policy it started from (the previous "
            "iteration's).</p>")
    return out


def _table(header, rows) -> str:
    return ("<table><tr>" + _cells(header, "th") + "</tr>"
            + "".join(f"<tr>{_cells(r, 'td')}</tr>" for r in rows) + "</table>")


def _cells(cells: list[str], tag: str) -> str:
    return "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in cells)


def _plots(m):
    """(title, the function that draws it from `data`, data); data None: no such plot."""
    judged = m.get("judge_agreement") or {}
    rm_meta = m.get("reward_model") or {}
    yield ("Judge-human agreement per principle on cross-fitted human training pairs (n under "
           "each), and the trust it earned with its 90 % interval", _agreement,
           judged if judged.get("n") else None)
    yield ("Reliability diagram (judge P vs human choice), raw and calibrated", _reliability,
           judged if judged.get("n") else None)
    yield ("Strength of each principle on the human slice: relevance × 2(accuracy − 0.5), 95 % "
           "intervals (`cai principles score`)", _strength, judged.get("strength") or None)
    scored = bool(rm_meta.get("heldout_scores"))
    yield "Reward-model scores on held-out human pairs", _rewards, rm_meta if scored else None
    yield "Reward vs reply length (held-out replies)", _length, rm_meta if scored else None
    live = {k: v for k, v in (m.get("loss") or {}).items() if v}
    yield "Training loss, one axis per stage", _curves, live or None
    yield ("Reward-model scores of each policy's replies", _policy_rewards,
           (m.get("evaluation") or {}).get("reward") or None)
    yield ("Refusal rate per set, 95 % intervals (corrected)", _refusals,
           (m.get("evaluation") or {}).get("table") or None)
    rows = m.get("iterations") or []
    yield "Per iteration: refusal, compliance, win rate vs previous, KL", _iterations, \
        rows if len(rows) > 1 else None


def _strength(rows: dict):
    """Principles sorted by strength, with their bootstrap intervals."""
    order = sorted(rows, key=lambda pid: rows[pid]["strength"])

    def draw(ax):
        ys = range(len(order))
        xs = [rows[p]["strength"] for p in order]
        # a percentile interval need not hold its point estimate: the bar stays, the arm goes
        lo = [max(0.0, x - rows[p]["ci95"][0]) for p, x in zip(order, xs)]
        hi = [max(0.0, rows[p]["ci95"][1] - x) for p, x in zip(order, xs)]
        ax.barh(list(ys), xs, xerr=[lo, hi], color=["#4c72b0" if x >= 0 else "#c44e52" for x in xs])
        ax.set_yticks(list(ys), [f"{p} (n={rows[p]['pairs']})" for p in order], fontsize=7)
        ax.axvline(0, color="grey", lw=0.8), ax.set_xlim(-1, 1), ax.set_xlabel("strength")
    return draw


def _agreement(report):
    """Per principle: cross-fitted accuracy raw and calibrated, and the trust it earned with its
    90 % interval (what `cai review` narrows)."""
    def draw(ax):
        cal, raw = report["calibrated"]["per_principle"], report["raw"]["per_principle"]
        names, x = list(cal), range(len(cal))
        ax.bar([i - 0.27 for i in x], [raw.get(n, {}).get("accuracy") or 0 for n in names],
               width=0.27, color="#8da0cb", label="accuracy, raw")
        ax.bar(list(x), [cal[n]["accuracy"] for n in names], width=0.27, color="#4c72b0",
               label="accuracy, calibrated")
        # trust as markers: a trust of 0 is a visible point, not an invisible bar
        trust = [report["trust"].get(n, 0) for n in names]
        ax.scatter([i + 0.27 for i in x], trust, marker="D", color="#c44e52", zorder=3,
                   label="trust")
        intervals = report.get("trust_interval") or {}
        if intervals:  # trust is the interval's lower end; the bar shows how far it may reach
            ax.errorbar([i + 0.27 for i in x], trust, fmt="none", ecolor="#c44e52", lw=1,
                        yerr=[[0] * len(names), [intervals.get(n, [t, t])[1] - t
                                                 for n, t in zip(names, trust)]])
        ax.axhline(0.5, color="grey", ls="--", lw=1, label="chance")
        ax.set_xticks(list(x), [f"{n}\nn={cal[n].get('n', 0)}" for n in names])
        ax.set_ylim(-0.03, 1), ax.legend(fontsize=7, ncol=2)
        ax.tick_params(axis="x", labelrotation=60, labelsize=7)
    return draw


def _reliability(report):
    def draw(ax):
        ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="perfectly calibrated")
        for key, color in (("raw", "#8da0cb"), ("calibrated", "#4c72b0")):
            bins = [b for b in report[key]["reliability"] if b["n"]]
            ax.scatter([b["mean_p"] for b in bins], [b["observed"] for b in bins],
                       s=[10 + 2 * b["n"] for b in bins], color=color, label=f"{key} (size = pairs)")
        ax.set_xlim(0, 1), ax.set_ylim(0, 1), ax.legend(fontsize=7)
        ax.set_xlabel("judge P(reply X is better)"), ax.set_ylabel("humans chose X")
    return draw


def _rewards(meta):
    def draw(ax):
        scores = meta["heldout_scores"]
        ax.hist([s[0] for s in scores], bins=15, alpha=0.6, label="chosen")
        ax.hist([s[1] for s in scores], bins=15, alpha=0.6, label="rejected")
        ax.set_xlabel("reward"), ax.legend(fontsize=7)
    return draw


def _policy_rewards(by_policy):
    """One box per policy (overlapping histograms of similar policies are unreadable)."""
    def draw(ax):
        names = [n for n, r in by_policy.items() if r.get("scores")]
        ax.boxplot([by_policy[n]["scores"] for n in names], orientation="horizontal")
        ax.set_yticks(range(1, len(names) + 1),
                      [f"{n}\nn={by_policy[n]['n']}, length corr {by_policy[n]['length_corr']}"
                       for n in names], fontsize=7)
        ax.set_xlabel("reward")
    return draw


def _length(meta):
    def draw(ax):
        pts = [(n, s) for (sc, sr), (nc, nr) in zip(meta["heldout_scores"], meta["heldout_lengths"])
               for n, s in ((nc, sc), (nr, sr))]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=8, color="#55a868")
        ax.set_xlabel("reply length (characters)"), ax.set_ylabel("reward")
        ax.set_title(f"correlation {meta.get('reward_length_corr')}", fontsize=8)
    return draw


def _curves(curves):
    """Each training loss on its own axis: SFT, reward-model and DPO losses differ in scale."""
    def draw(axes):
        for ax, (stage, rows) in zip(axes if isinstance(axes, list) else [axes], curves.items()):
            ax.plot([r["step"] for r in rows], [r["loss"] for r in rows])
            ax.set_title(stage, fontsize=8), ax.set_xlabel("step"), ax.set_ylabel("loss")
    return draw, len(curves)


def _refusals(table):
    """Per set, each policy's corrected refusal rate with its 95 % interval."""
    sets = list(TITLES.items())

    def draw(ax):
        names = list(table)
        for j, name in enumerate(names):
            cells = [table[name].get(s) or {} for s, _ in sets]
            xs = [i + (j - (len(names) - 1) / 2) * 0.25 for i in range(len(sets))]
            ys = [_nan(c.get("rate")) for c in cells]
            err = [[_gap(c, y, 0) for c, y in zip(cells, ys)], [_gap(c, y, 1) for c, y in zip(cells, ys)]]
            ax.errorbar(xs, ys, yerr=err, fmt="o", capsize=3, label=name)
        ax.set_xticks(range(len(sets)), [label for _, label in sets], fontsize=8)
        ax.set_ylim(-0.03, 1.03), ax.set_ylabel("refusal rate"), ax.legend(fontsize=7)
    return draw


def _gap(cell: dict, y: float, side: int) -> float:
    ci = cell.get("ci95")
    return 0.0 if not ci or y != y else abs(ci[side] - y)


def _iterations(rows):
    """Rates of each iteration's policy (left axis) and its KL to the previous one (right)."""
    def draw(ax):
        ks = [r["iteration"] for r in rows]
        for key, label in (("refusal", "harmful: refusal"), ("compliance", "safe: compliance"),
                           ("win_rate", "judge win rate vs previous")):
            ax.plot(ks, [_nan(r[key]) for r in rows], marker="o", label=label)
        ax.set_xticks(ks), ax.set_xlabel("iteration"), ax.set_ylim(-0.05, 1.05)
        kl = ax.twinx()
        kl.plot(ks, [_nan(r["kl"]) for r in rows], color="grey", linestyle="--", marker="x")
        kl.set_ylabel("KL/token (dashed)")
        ax.legend(fontsize=7, loc="upper left")
    return draw


def _nan(x):
    return float("nan") if x is None else x


def _pairs_html(pairs: list[dict]) -> str:
    rows = ["<h2>Sample of preference pairs</h2>", "<table><tr><th>prompt</th><th>rejected</th>"
            "<th>critique / judge</th><th>chosen</th><th>counted for</th></tr>"]
    for p in pairs:
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(p.get(k, '–')))}</td>" for k in
                                     ("prompt", "rejected", "why", "chosen", "counted")) + "</tr>")
    return "\n".join(rows + ["</table>"])


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>cai report</title>
<style>body{{font-family:sans-serif;max-width:1100px;margin:2em auto}}
figure{{display:inline-block;margin:.5em}} table{{border-collapse:collapse;font-size:12px}}
td,th{{border:1px solid #ccc;padding:4px;vertical-align:top}}</style></head>
<body data-plots="{n}" data-loaded="0" data-broken="0" data-errors="0">
{body}
<script>
window.addEventListener("error", () => {{ document.body.dataset.errors++; }});
window.addEventListener("load", () => {{
  const imgs = [...document.querySelectorAll("img.plot")];
  document.body.dataset.loaded = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.broken = imgs.filter(i => !(i.complete && i.naturalWidth > 0)).length;
}});
</script></body></html>
"""
