"""The README's pictures, taken by this test in Chromium: report.html of a run and the review
page as an annotator sees it. `CAI_UPDATE_SCREENSHOTS=1` writes them into docs/images/, so they
are retaken from the current pages, never drawn by hand."""

import os
import shutil
import threading

from conftest import ROOT
from review_helpers import browser_or_skip, data_run, evaluate_manifest, launch

from cai.store.core import Store

SHOTS = ("report.png", "review.png")


def test_screenshots_of_the_report_and_the_review_page(tmp_path, fake_backend):
    from werkzeug.serving import make_server

    from cai.review.app import create_app
    from cai.review.commands import invite, prepare
    cfg = data_run(tmp_path / "run")
    with Store(cfg.run_dir, lock=False) as store:
        evaluate_manifest(store)
    prepare(cfg)
    server = make_server("127.0.0.1", 0, create_app(cfg.run_dir, cfg), threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    link = f"http://127.0.0.1:{server.server_port}/a/{invite(cfg, 'ann')}/"
    try:
        with browser_or_skip() as p:
            page = launch(p).new_page(viewport={"width": 1100, "height": 720})
            page.goto((tmp_path / "run" / "report.html").as_uri())
            page.screenshot(path=tmp_path / "report.png")
            page.goto(link)
            page.click("#go-label")
            page.screenshot(path=tmp_path / "review.png")
    finally:
        server.shutdown()
    for name in SHOTS:
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # a page was painted
        if os.environ.get("CAI_UPDATE_SCREENSHOTS"):
            shutil.copy(tmp_path / name, ROOT / "docs" / "images" / name)
    # that the README's pictures exist needs no browser: tests/test_docs.py checks it
