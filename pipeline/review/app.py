"""The review page: Flask and plain Jinja templates (autoescaped), no JavaScript build step.

Every request opens the run's store on its own connection, without the run lock: labels are
rows appended to their own tables (SQLite serialises the writes), so annotators in several
browsers, and a `cai run` in the same directory, never lose one another's work. Replies are
untrusted text: templates escape them, and the Content-Security-Policy lets only the page's own
script (by nonce) run, so a reply carrying <script> is shown, never executed.
"""

import secrets
from urllib.parse import quote

from flask import Flask, abort, g, jsonify, redirect, render_template, request, url_for

from ..store import Store
from .agreement import decide, review_metrics
from .items import latest, next_item, shown_swapped, to_choice

MODES = ("label", "evaluate")
KEYS = ("a", "b", "tie", "skip")


def _same(given: str, token: str) -> bool:
    """Constant-time comparison of text: `compare_digest` refuses non-ASCII str (a 500 with a
    traceback for a token like 'é'), so both sides are compared as UTF-8 bytes."""
    return secrets.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8"))


def create_app(run_dir, config, token: str | None = None) -> Flask:
    """The app over `run_dir`; with `token`, every request must carry it (URL or cookie)."""
    app = Flask(__name__)
    need, adjudicators = config.review.annotators_per_item, set(config.review.adjudicators)

    @app.before_request
    def _open():
        g.nonce = secrets.token_urlsafe(12)
        if token and _same(request.args.get("token", ""), token):
            g.set_token = True
        elif token and not _same(request.cookies.get("cai_token", ""), token):
            abort(403)
        g.store = Store(run_dir, lock=False)
        g.annotator = request.cookies.get("cai_annotator", "").strip()

    @app.after_request
    def _close(response):
        store = g.pop("store", None)
        if store:
            store.close()
        if g.get("set_token"):
            response.set_cookie("cai_token", token, httponly=True, samesite="Strict")
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{g.nonce}'; "
            "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    def page(template, **kw):
        return render_template(template, nonce=g.nonce, annotator=g.annotator, **kw)

    @app.get("/")
    def index():
        if not g.annotator:
            return page("name.html")
        labels = g.store.review_labels()
        progress = {}
        for mode in MODES:
            items = g.store.review_items(mode)
            decisions = decide(items, labels, need)
            mine = sum(g.annotator in v for i, v in latest(labels).items() if i in items)
            progress[mode] = {"items": len(items), "mine": mine,
                              "decided": sum(d["status"] == "decided" for d in decisions.values()),
                              "queue": sum(d["status"] == "adjudicate" for d in decisions.values())}
        return page("index.html", progress=progress, need=need,
                    may_adjudicate=_may_adjudicate(g.annotator))

    @app.post("/name")
    def name():
        who = request.form.get("name", "").strip()[:80]
        response = redirect(url_for("index"))
        if who:
            response.set_cookie("cai_annotator", who, samesite="Strict")
        return response

    def _may_adjudicate(who: str) -> bool:
        return bool(who) and (not adjudicators or who in adjudicators)

    @app.get("/<mode>")
    def item_page(mode):
        if mode not in MODES:
            abort(404)
        if not g.annotator:
            return redirect(url_for("index"))
        items = g.store.review_items(mode)
        item = next_item(items, g.store.review_labels(), g.annotator, need)
        if item is None:
            return page("done.html", mode=mode)
        return _show(mode, item, items[item], role="annotator")

    def _show(mode, item_id, item, role):
        swapped = shown_swapped(item_id, g.annotator)
        a, b = (item["second"], item["first"]) if swapped else (item["first"], item["second"])
        judge = item.get("judge_p_first")
        if judge is not None and swapped:
            judge = 1 - judge
        return page("item.html", mode=mode, item_id=item_id, item=item, a=a, b=b, role=role,
                    judge_p_a=judge, show_context=mode == "label")

    @app.post("/<mode>/<item_id>")
    def label(mode, item_id):
        key = request.form.get("choice", "")
        role = request.form.get("role", "annotator")
        if mode not in MODES or key not in KEYS or role not in ("annotator", "adjudicator"):
            abort(400)
        if not g.annotator or item_id not in g.store.review_items(mode):
            abort(400)
        if role == "adjudicator" and not _may_adjudicate(g.annotator):
            abort(403)
        g.store.put_review_label(item_id, g.annotator, role,
                                 to_choice(key, shown_swapped(item_id, g.annotator)),
                                 request.form.get("note", "").strip()[:2000])
        return redirect(url_for("adjudicate" if role == "adjudicator" else "item_page", mode=mode))

    @app.get("/adjudicate")
    def adjudicate():
        if not _may_adjudicate(g.annotator):
            abort(403)
        labels = g.store.review_labels()
        for mode in MODES:
            items = g.store.review_items(mode)
            queue = [i for i, d in decide(items, labels, need).items() if d["status"] == "adjudicate"]
            if queue:
                return _show(mode, queue[0], items[queue[0]], role="adjudicator")
        return page("done.html", mode="adjudicate")

    @app.get("/stats.json")
    def stats():
        return jsonify(review_metrics(g.store, need) or {})

    app.jinja_env.filters["pct"] = lambda p: "–" if p is None else f"{100 * p:.0f} %"
    app.jinja_env.filters["q"] = quote
    return app


def serve(run_dir, config, host: str = "127.0.0.1", port: int = 8765, echo=print):
    """Serve until interrupted. Bound beyond loopback, the URL carries a random token."""
    from werkzeug.serving import make_server
    token = None if host in ("127.0.0.1", "localhost", "::1") else secrets.token_urlsafe(16)
    server = make_server(host, port, create_app(run_dir, config, token), threaded=True)
    echo(f"cai review: http://{host}:{server.server_port}/" + (f"?token={token}" if token else "")
         + "  (Ctrl-C stops it; labels are saved as they are made)")
    server.serve_forever()
