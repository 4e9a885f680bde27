"""Start-up stays light: a rerun with nothing to compute imports no heavy library (bench/startup.py
times it: under a second), and report.html's plots are drawn only when what they show changed."""

import json
import subprocess
import sys

from conftest import FAKE_ARGS, ROOT, small_config

from cai.report import figures, html
from cai.runs.runner import run_stages
from cai.stages import DATA_STAGES

HEAVY = ("torch", "transformers", "datasets", "trl", "sklearn", "scipy", "matplotlib", "pandas")
PROBE = ("import atexit, json, runpy, sys\n"
         "atexit.register(lambda: print('HEAVY', json.dumps(sorted(m for m in {heavy} if m in "
         "sys.modules)), file=sys.stderr))\n"
         "sys.argv = {argv}\nrunpy.run_path(sys.argv[0], run_name='__main__')\n")


def _run(run_dir, *extra) -> list:
    argv = [str(ROOT / "tests" / "drivers" / "cai_fake.py"), "run", "--to", "export", "--run-dir",
            str(run_dir), *FAKE_ARGS, *extra]
    out = subprocess.run([sys.executable, "-c", PROBE.format(heavy=HEAVY, argv=argv)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stderr.rsplit("HEAVY ", 1)[1])


def test_an_unchanged_rerun_imports_no_heavy_library(tmp_path):
    assert "datasets" in _run(tmp_path / "r")  # the first run exports and draws
    assert _run(tmp_path / "r") == []


def test_plots_are_drawn_again_only_when_what_they_show_changes(tmp_path, fake_backend,
                                                               monkeypatch):
    metrics = run_stages(small_config(tmp_path / "r"), DATA_STAGES, echo=lambda s: None)
    plots = tmp_path / "plots"
    first = html.render(metrics, plots)
    kept = sorted(p.name for p in plots.iterdir())
    assert len(kept) == 3  # agreement, reliability, strength: no model trained
    monkeypatch.setattr(figures, "_png", lambda *a: (_ for _ in ()).throw(AssertionError("drawn")))
    assert html.render(metrics, plots) == first  # nothing drawn, the same page
    monkeypatch.undo()
    judged = metrics["judge_agreement"]
    changed = {**metrics, "judge_agreement": {**judged, "strength": {
        pid: {**row, "strength": -row["strength"], "ci95": [-row["ci95"][1], -row["ci95"][0]]}
        for pid, row in judged["strength"].items()}}}
    html.render(changed, plots)  # the plots of the judge's report are drawn again, the old go
    now = sorted(p.name for p in plots.iterdir())
    assert len(now) == 3 and not set(now) & set(kept)
