"""Plots drawn with matplotlib (Agg) as inlined PNG, and kept by content: each under the hash of
what it shows and of the code that draws it, so a rerun that changed nothing draws nothing (and
imports no matplotlib)."""

import base64
import io
from pathlib import Path

from cai.fsutil import atomic_write_text
from cai.hashing import content_hash, file_hash

PLOTS = ".cai-plots"  # in the run directory: the plots of its report.html, by content


class PlotCache:
    """PNG plots by the hash of what they show and of this module's code."""

    def __init__(self, folder):
        self.folder, self.used = (Path(folder) if folder else None), set()

    def png(self, title: str, make, data) -> str:
        if self.folder is None:
            return _draw(make, data)
        name = content_hash(title, make.__name__, data, file_hash(Path(make.__code__.co_filename)),
                            file_hash(Path(__file__)))[:24] + ".b64"
        self.used.add(name)
        path = self.folder / name
        if path.exists():
            return path.read_text()
        png = _draw(make, data)
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, png)
        return png

    def keep_only_used(self):
        if self.folder is not None and self.folder.is_dir():
            for p in self.folder.glob("*.b64"):
                if p.name not in self.used:
                    p.unlink(missing_ok=True)


def _draw(make, data) -> str:
    drawn = make(data)
    return _png(*drawn) if isinstance(drawn, tuple) else _png(drawn)


def _png(draw, ncols: int = 1) -> str:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, ncols, figsize=(7 if ncols == 1 else 3.2 * ncols, 3.6), dpi=90,
                             squeeze=False)
    draw(axes[0][0] if ncols == 1 else list(axes[0]))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()
