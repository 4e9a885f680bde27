"""What `cai review` and its subcommands do, apart from serving the page."""

import json
from pathlib import Path

from cai.errors import CaiError
from cai.fsutil import atomic_write_text
from cai.inputs.sources import BadRows
from cai.review.agreement import decide, review_metrics, reviewed_pairs, stats_lines  # noqa: F401
from cai.review.items import loaded_items, refresh
from cai.store.core import DB_NAME, Store


def open_store(config) -> Store:
    """The run's store, without the run lock (labels are their own append-only rows)."""
    if not (Path(config.run_dir) / DB_NAME).exists():
        raise CaiError(f"{config.run_dir}: no cai run here yet; run `cai run` (or `cai pairs`) first")
    return Store(config.run_dir, lock=False)


def prepare(config) -> dict:
    """Store the run's current items; {mode: items} reviewable now."""
    with open_store(config) as store:
        return refresh(store)


def invite(config, name: str, adjudicator: bool = False) -> str:
    """A personal review token for `name`."""
    from cai.review.access import invite as make
    with open_store(config) as store:
        return make(store, name, adjudicator)


def load(config, path: str) -> tuple[int, dict]:
    """Add the pairs of a calibration-format file as label items: (how many are new or kept,
    bad rows skipped by reason under `inputs.on_bad_row: skip`)."""
    bad = BadRows.of(config)
    items = loaded_items(path, bad)
    with open_store(config) as store:
        store.put_review_items(items)
    return len(items), dict(bad.counts)


def export(config, out: str) -> tuple[int, str]:
    """Decided pairs as calibration-format JSONL (what `calibration.source` reads), with who
    decided them: (how many, a hint when labels wait for more people)."""
    need = config.review.annotators_per_item
    with open_store(config) as store:
        pairs = reviewed_pairs(store, need)
        decisions = decide(store.review_items("label"), store.review_labels(), need)
    rows = []
    for p in pairs:
        d = decisions["item-" + p["id"][len("review-"):]]
        rows.append({**p, "source": "cai-review", "votes": d["votes"], "decided_by": d["by"]})
    atomic_write_text(Path(out), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    return len(rows), _waiting_hint(decisions, need)


def _waiting_hint(decisions: dict, need: int) -> str:
    waiting = sum(d["status"] == "pending" and bool(d["votes"]) for d in decisions.values())
    ties = sum(d["status"] == "adjudicate" for d in decisions.values())
    hints = []
    if waiting:
        hints.append(f"{waiting} labelled pairs wait for {need} different people each "
                     "(review.annotators_per_item; labelling alone: --set "
                     "review.annotators_per_item=1)")
    if ties:
        hints.append(f"{ties} tied pairs wait for an adjudicator")
    return "; ".join(hints)


def stats(config) -> dict | None:
    """The review metrics, also written into the run's metrics.json, summary.md and report,
    under the run lock: a run writing them at the same time is waited for by no one, so a
    running cai makes this stop with one line instead of one write undoing the other."""
    from cai.report import html as report_html
    from cai.report import summary as report
    open_store(config).close()  # a run directory with no run: one line
    with Store(config.run_dir) as store:
        m = review_metrics(store, config.review.annotators_per_item)
        _rewrite_metrics(config, m, report, report_html)
    return m


def _rewrite_metrics(config, m: dict, report, report_html):
    from cai.report.figures import PLOTS
    path = Path(config.run_dir) / "metrics.json"
    if path.exists():
        metrics = {**json.loads(path.read_text()), "review": m}
        atomic_write_text(path, json.dumps(metrics, indent=2, default=str))
        atomic_write_text(path.with_name("summary.md"), report.summary(metrics))
        atomic_write_text(path.with_name("report.html"),
                          report_html.render(metrics, path.with_name(PLOTS)))
