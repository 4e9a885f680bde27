"""report.html renders in a real headless browser (Debian chromium): no script errors, every
plot decoded and painted. `.ci/run` installs chromium when it is absent."""

import re
import shutil
import subprocess

import pytest
from conftest import small_config

from cai.runs.runner import run_stages
from cai.stages import DATA_STAGES

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
         "--window-size=1200,2400"]


def dom_in_chromium(page) -> str:
    """The page's DOM after load, as chromium parsed and ran it."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (.ci/run installs Debian's chromium)")
    return subprocess.run([CHROMIUM, *FLAGS, "--dump-dom", page.as_uri()], capture_output=True,
                          text=True, timeout=120).stdout


def render_in_chromium(page, screenshot=None) -> dict:
    """The <body> data-* health attributes of the page after load, as chromium sees them."""
    dom = dom_in_chromium(page)
    flags = [CHROMIUM, *FLAGS]
    if screenshot:
        subprocess.run(flags + [f"--screenshot={screenshot}", page.as_uri()], capture_output=True,
                       timeout=120)
    body = re.search(r"<body([^>]*)>", dom)
    assert body, dom[:500]
    return dict(re.findall(r'data-(\w+)="(\d+)"', body.group(1)))


def test_report_of_a_data_run_loads_with_its_plots(tmp_path, fake_backend):
    run_stages(small_config(tmp_path), DATA_STAGES, echo=lambda s: None)
    page = tmp_path / "report.html"
    health = render_in_chromium(page, tmp_path / "shot.png")
    assert health["plots"] == "3"  # judge agreement, reliability, strength: no model trained yet
    assert health == {"plots": "3", "loaded": "3", "broken": "0", "errors": "0"}
    assert (tmp_path / "shot.png").stat().st_size > 10_000  # something was painted
    text = page.read_text()
    assert "Sample of preference pairs" in text and "<td>" in text
    # what the AI pairs counted for, said plainly (the fake judge is at chance: nothing)
    assert re.search(r"\d+ AI pairs counted as 0\.0 effective pairs", text)
