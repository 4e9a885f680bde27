"""Who may write a label, and from where: personal links (the name is the server's record of
the token), a Host allowlist against DNS rebinding, same-origin forms, adjudication only of
ties by adjudicators, the order a form showed — and a real cross-origin form post in Chromium
from a page on another port, refused."""

import http.server
import threading

import pytest
from review_helpers import browser_or_skip, launch, sign_in

from cai.config.run import load_config
from cai.review.access import form_token
from cai.review.app import create_app
from cai.review.commands import invite
from cai.store.core import Store


@pytest.fixture
def app_client(tmp_path):
    """A test client over a store with one loaded pair; links for ann (an adjudicator) and bo."""
    cfg = load_config(None, [f"run_dir={tmp_path}", "review.annotators_per_item=2"])
    with Store(tmp_path) as store:
        store.put_review_items([("item-1", "label", {"prompt": "p", "first": "x", "second": "y",
                                                      "source": "loaded"})])
    tokens = {"ann": invite(cfg, "ann", adjudicator=True), "bo": invite(cfg, "bo")}
    return create_app(tmp_path, cfg).test_client(), tokens, tmp_path


def _post(client, token, item="item-1", origin="http://localhost", **form):
    data = {"choice": "a", "order": "ab", "form_token": form_token(token), **form}
    headers = {} if origin is None else {"Origin": origin}
    return client.post(f"/a/{token}/label/{item}", data=data, headers=headers)


def _labels(run_dir):
    with Store(run_dir, lock=False) as store:
        return [(r["annotator"], r["role"], r["choice"]) for r in store.review_labels()]


def test_every_page_needs_a_personal_link_and_the_name_is_the_servers(app_client):
    client, tokens, run_dir = app_client
    assert client.get("/").status_code == 403
    assert client.get("/a/wrong/").status_code == 403
    assert client.get("/a/wrong/stats.json").status_code == 403
    assert client.get("/a/%C3%A9t%C3%A9/").status_code == 403  # non-ASCII: 403, not a 500
    page = client.get(f"/a/{tokens['bo']}/")
    assert page.status_code == 200 and ">bo</b>" in page.text
    # a cookie naming someone else changes nothing: names come from the token alone
    client.set_cookie("cai_annotator", "ann")
    assert _post(client, tokens["bo"]).status_code == 302
    assert _labels(run_dir) == [("bo", "annotator", "first")]


def test_a_foreign_host_header_is_refused_before_anything_is_read(app_client):
    """DNS rebinding: evil.example resolved to 127.0.0.1 reaches the server with its own Host."""
    client, tokens, run_dir = app_client
    evil = {"Host": "evil.example:8765"}
    for path in ("stats.json", "label", ""):
        response = client.get(f"/a/{tokens['ann']}/{path}", headers=evil)
        assert response.status_code == 403 and "p</div>" not in response.text
    data = {"choice": "a", "order": "ab", "form_token": form_token(tokens["ann"])}
    assert client.post(f"/a/{tokens['ann']}/label/item-1", data=data,
                       headers={**evil, "Origin": "http://evil.example:8765"}).status_code == 403
    assert client.get(f"/a/{tokens['ann']}/", headers={"Host": "localhost:8765"}).status_code == 200
    assert _labels(run_dir) == []


def test_a_post_from_another_origin_or_without_the_form_token_is_refused(app_client):
    client, tokens, run_dir = app_client
    assert _post(client, tokens["ann"], origin="http://localhost:9999").status_code == 403
    assert _post(client, tokens["ann"], origin="null").status_code == 403
    assert _post(client, tokens["ann"], form_token="").status_code == 403
    assert _post(client, tokens["ann"], form_token=form_token(tokens["bo"])).status_code == 403
    assert client.post(f"/a/{tokens['ann']}/label/item-1", data={"choice": "a", "order": "ab",
                       "form_token": form_token(tokens["ann"])},
                       headers={"Referer": "http://localhost:9999/x"}).status_code == 403
    assert _labels(run_dir) == []
    assert _post(client, tokens["ann"], origin=None).status_code == 302  # same-page, no Origin


def test_adjudication_only_of_ties_and_only_by_adjudicators(app_client):
    client, tokens, run_dir = app_client
    rule = {"role": "adjudicator"}
    assert _post(client, tokens["bo"], **rule).status_code == 403     # not an adjudicator
    assert _post(client, tokens["ann"], **rule).status_code == 409    # nothing tied yet
    assert client.get(f"/a/{tokens['bo']}/adjudicate").status_code == 403
    _post(client, tokens["ann"], choice="a")
    _post(client, tokens["bo"], choice="b")                          # 1 vs 1: a tie
    assert _post(client, tokens["ann"], choice="b", **rule).status_code == 302
    assert _labels(run_dir)[-1] == ("ann", "adjudicator", "second")


def test_the_form_says_which_reply_it_showed_as_a(app_client):
    client, tokens, run_dir = app_client
    _post(client, tokens["ann"], choice="a", order="ba")
    _post(client, tokens["bo"], choice="a", order="ab")
    assert _labels(run_dir) == [("ann", "annotator", "second"), ("bo", "annotator", "first")]
    assert _post(client, tokens["bo"], order="xx").status_code == 400


EVIL = """<!doctype html><html><body>
<form id="f" method="post" action="{action}">
<input name="choice" value="a"><input name="order" value="ab">
<input name="form_token" value="{form_token}"></form>
<script>document.getElementById("f").submit()</script></body></html>"""


def test_a_cross_origin_form_post_from_another_port_is_refused_in_chromium(served):
    """The worst case: a page on another port of this host knows the whole personal link and
    the form token, and a browser holding the link submits its form. Refused; nothing stored."""
    link = served.link("ann")
    with Store(served.cfg.run_dir, lock=False) as store:
        item = next(iter(store.review_items("label")))
    page_html = EVIL.format(action=f"{link}/label/{item}",
                            form_token=form_token(link.rsplit("/", 1)[1])).encode()

    class Evil(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(page_html)

        def log_message(self, *args):
            pass
    evil = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Evil)
    threading.Thread(target=evil.serve_forever, daemon=True).start()
    try:
        with browser_or_skip() as p:
            browser = launch(p)
            page = sign_in(browser, link + "/", "ann")  # the victim's browser has used its link
            with page.expect_response(lambda r: r.request.method == "POST") as posted:
                page.goto(f"http://127.0.0.1:{evil.server_port}/")
            assert posted.value.request.headers["origin"] == f"http://127.0.0.1:{evil.server_port}"
            assert posted.value.status == 403
            page.wait_for_load_state()
            assert "not sent from the review page" in page.content()
            browser.close()
    finally:
        evil.shutdown()
    assert _labels(served.cfg.run_dir) == []


def test_a_store_damaged_while_serving_is_its_one_line_on_the_page(app_client):
    client, tokens, run_dir = app_client
    (run_dir / "cai.sqlite").write_bytes(b"")
    response = client.get(f"/a/{tokens['ann']}/")
    assert response.status_code == 503 and "the run store is damaged" in response.text
