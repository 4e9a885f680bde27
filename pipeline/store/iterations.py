"""Where each iteration's run directory is, and the pairs earlier iterations carry into this
one's blend (read from their stores). `cai.runs.iterations` derives each iteration's config."""

from pathlib import Path

from cai.store.core import DB_NAME, ReadOnlyStore


def iteration_dir(root, k: int) -> Path:
    return Path(root) if k == 1 else Path(root) / "iterations" / str(k)


def iteration_numbers(root) -> list[int]:
    """The iterations that have a run directory under `root` (1 is `root` itself)."""
    more = Path(root) / "iterations"
    return [1] + sorted(int(d.name) for d in more.glob("*") if d.name.isdigit()
                        and (d / DB_NAME).exists()) if more.exists() else [1]


def carried_pairs(cfg) -> list[tuple]:
    """(id, pair) of earlier iterations' AI pairs for iteration `iterations.current`'s blend,
    each weighing its weight times decay ** (iterations ago); none with decay 0."""
    k, decay = cfg.iterations.current, cfg.iterations.decay
    if k == 1 or decay == 0:
        return []
    out = []
    for j in range(1, k):
        d = iteration_dir(cfg.iterations.root, j)
        if not (d / DB_NAME).exists():
            continue
        with ReadOnlyStore(d) as store:
            manifest = store.get_manifest("pairs")
            pairs = store.get_records(manifest["ids"]) if manifest else {}
        factor = decay ** (k - j)
        for pid, pair in sorted(pairs.items()):
            out.append((f"{pid}-it{j}", {**pair, "weight": round(pair["weight"] * factor, 6),
                                         "provenance": {**pair["provenance"], "iteration": j,
                                                        "decay": factor}}))
    return out
