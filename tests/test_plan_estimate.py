"""`cai plan` prices its calls with the run directory's own past: seconds per model call of each
stage, as the last run that made calls in it measured them."""

import pytest
from conftest import small_config

from cai.runs.plan import format_plan, plan
from cai.runs.runner import run_stages
from cai.stages import DATA_STAGES
from cai.store.core import ReadOnlyStore


def test_a_plan_is_priced_by_the_stores_past_runs(tmp_path, fake_backend):
    assert plan(small_config(tmp_path))["seconds"] is None  # nothing past: no estimate
    assert "est. s: ? where no past run" in format_plan(plan(small_config(tmp_path)))
    run_stages(small_config(tmp_path), DATA_STAGES, echo=lambda s: None)
    with ReadOnlyStore(tmp_path) as store:
        timings = store.list_runs()[-1]["summary"]["timings"]
    assert timings["generate"]["calls"] == 12 and timings["generate"]["seconds"] >= 0
    edited = plan(small_config(tmp_path, **{"generate.samples": 3}))
    rows = {r["stage"]: r for r in edited["stages"]}
    per_call = timings["generate"]["seconds"] / timings["generate"]["calls"]
    assert rows["generate"]["model_calls"] == 6
    assert rows["generate"]["seconds"] == pytest.approx(round(6 * per_call, 1))
    assert all(r["seconds"] == 0 for r in edited["stages"] if not r["model_calls"]
               and not r["to_compute"])
    text = format_plan(edited)
    assert "est. s" in text.splitlines()[0]
