"""The review page: Flask and plain Jinja templates (autoescaped), no JavaScript build step.

Every request opens the run's store on its own connection, without the run lock: labels are
rows appended to their own tables (SQLite serialises the writes), so annotators in several
browsers, and a `cai run` in the same directory, never lose one another's work. Replies are
untrusted text: templates escape them, and the Content-Security-Policy lets only the page's own
script (by nonce) run, so a reply carrying <script> is shown, never executed.

Every page lives under its annotator's personal link, `/a/<token>/…` (`cai.review.access`):
no cookie names anyone, so another origin — another port of this host included — can neither
read nor write as them.
"""

import secrets
from urllib.parse import quote

from flask import Flask, abort, g, jsonify, redirect, render_template, request

from cai.errors import CaiError
from cai.review import access
from cai.review.agreement import decide, review_metrics
from cai.review.items import latest, next_item, shown_swapped, to_choice
from cai.review.routing import route, routing_principles
from cai.store.core import Store

MODES = ("label", "evaluate")
KEYS = ("a", "b", "tie", "skip")
ORDERS = {"ab": False, "ba": True}  # the form says which reply it showed as A


def create_app(run_dir, config, host: str = "127.0.0.1", allow_hosts=()) -> Flask:
    """The app over `run_dir`, answering requests addressed to `host` (and loopback)."""
    app = Flask(__name__)
    need = config.review.annotators_per_item
    listed = set(config.review.adjudicators)
    hosts = access.allowed_hosts(host, allow_hosts)
    principles = routing_principles(config) if config.review.order == "routed" else None

    @app.before_request
    def _open():
        g.nonce = secrets.token_urlsafe(12)
        if access.host_name(request.host) not in hosts:
            abort(403, "this server answers requests to its own address only")
        token = (request.view_args or {}).get("token")
        if token is None:
            return None
        g.store = Store(run_dir, lock=False, pages=False)  # `cai review` checked them at start
        who = g.store.annotator_of(access.token_hash(token))
        if who is None:
            abort(403, "this link is not valid here")
        g.token, g.annotator, g.base = token, who["name"], f"/a/{quote(token)}"
        g.adjudicator = who["adjudicator"] or who["name"] in listed
        if request.method == "POST" and not _posted_by_the_page(token):
            abort(403, "this form was not sent from the review page")

    def _posted_by_the_page(token: str) -> bool:
        own = f"{request.scheme}://{request.host}"
        return access.from_this_page(request.headers, own) and access.same(
            request.form.get("form_token", ""), access.form_token(token))

    @app.after_request
    def _close(response):
        store = g.pop("store", None)
        if store:
            store.close()
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{g.nonce}'; "
            "form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
        response.headers["X-Content-Type-Options"] = "nosniff"
        # the link is the key: never sent to another origin ("no-referrer" would make browsers
        # send `Origin: null` on the page's own forms)
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    @app.errorhandler(403)
    def _forbidden(error):
        return render_template("forbidden.html", nonce=g.get("nonce", ""), annotator=None,
                               why=error.description), 403

    @app.errorhandler(CaiError)
    def _unusable(error):  # a store damaged (or locked) while serving: its one line, no trace
        return render_template("forbidden.html", nonce=g.get("nonce", ""), annotator=None,
                               why=str(error), title="The review cannot go on"), 503

    def page(template, **kw):
        return render_template(template, nonce=g.nonce, annotator=g.annotator, base=g.base,
                               form_token=access.form_token(g.token), **kw)

    @app.get("/")
    def root():
        abort(403, "open your personal link")

    @app.get("/a/<token>/")
    def index(token):
        labels, progress = g.store.review_labels(), {}
        for mode in MODES:
            progress[mode] = _progress(mode, labels)
        people = g.store.annotators()
        return page("index.html", progress=progress, need=need, people=len(people),
                    may_adjudicate=g.adjudicator, adjudicators=listed | {
                        n for n, a in people.items() if a})

    def _progress(mode, labels) -> dict:
        items, queued = g.store.review_items(mode), g.store.review_items(mode, queued=True)
        decisions = decide(items, labels, need)
        mine = latest(labels)
        return {"items": len(queued), "retired": len(items) - len(queued),
                "mine": sum(g.annotator in mine.get(i, {}) for i in queued),
                "decided": sum(d["status"] == "decided" for d in decisions.values()),
                "queue": sum(d["status"] == "adjudicate" for d in decisions.values())}

    @app.get("/a/<token>/<mode>")
    def item_page(token, mode):
        _known_mode(mode)
        items, labels = g.store.review_items(mode, queued=True), g.store.review_labels()
        worth = route(g.store, items, labels, principles, config.calibration.ensemble,
                      config.seed) if mode == "label" and principles else {}
        item = next_item(items, labels, g.annotator, need, worth)
        if item is None:
            return page("done.html", mode=mode)
        return _show(mode, item, items[item], role="annotator", why=worth.get(item, (0, ""))[1])

    @app.get("/a/<token>/<mode>/<item_id>")
    def one_item(token, mode, item_id):
        """An item again (after undo, or to change a label): a relabel is a later row."""
        _known_mode(mode)
        items = g.store.review_items(mode)
        if item_id not in items:
            abort(404)
        return _show(mode, item_id, items[item_id], role="annotator")

    def _known_mode(mode):
        if mode not in MODES:
            abort(404)

    def _show(mode, item_id, item, role, why=""):
        swapped = shown_swapped(item_id, g.annotator)
        a, b = (item["second"], item["first"]) if swapped else (item["first"], item["second"])
        judge = item.get("judge_p_first")
        if judge is not None and swapped:
            judge = 1 - judge
        progress = _progress(mode, g.store.review_labels())
        limit = (config.evaluate if mode == "evaluate" else config.generate).max_new_tokens
        return page("item.html", mode=mode, item_id=item_id, item=item, a=a, b=b, role=role,
                    order="ba" if swapped else "ab", judge_p_a=judge, progress=progress,
                    show_context=mode == "label", cut={"a": _maybe_cut(a), "b": _maybe_cut(b)},
                    limit=limit, why=why)

    @app.post("/a/<token>/<mode>/<item_id>")
    def label(token, mode, item_id):
        key, role = request.form.get("choice", ""), request.form.get("role", "annotator")
        order = request.form.get("order", "")
        if mode not in MODES or key not in KEYS or role not in ("annotator", "adjudicator") \
                or order not in ORDERS:
            abort(400)
        items = g.store.review_items(mode)
        if item_id not in items:
            abort(400)
        if role == "adjudicator":
            _may_rule(mode, item_id, items)
        g.store.put_review_label(item_id, g.annotator, role, to_choice(key, ORDERS[order]),
                                 request.form.get("note", "").strip()[:2000])
        return redirect(f"{g.base}/adjudicate" if role == "adjudicator" else f"{g.base}/{mode}")

    def _may_rule(mode, item_id, items):
        """Adjudication: by an adjudicator, on an item the annotators tied on, nothing else."""
        if not g.adjudicator:
            abort(403, "you are not an adjudicator of this review")
        if decide({item_id: items[item_id]}, g.store.review_labels(), need)[item_id]["status"] \
                != "adjudicate" and item_id not in _ruled():
            abort(409)

    def _ruled() -> set:
        return {r["item"] for r in g.store.review_labels() if r["role"] == "adjudicator"}

    @app.post("/a/<token>/<mode>/undo")
    def undo(token, mode):
        """Withdraw this annotator's latest label in `mode` and show its item again."""
        _known_mode(mode)
        items, standing = g.store.review_items(mode), latest(g.store.review_labels())
        mine = [r for r in reversed(g.store.review_labels()) if r["annotator"] == g.annotator
                and r["role"] == "annotator" and r["item"] in items
                and g.annotator in standing.get(r["item"], {})]
        if not mine:
            return redirect(f"{g.base}/{mode}")
        g.store.put_review_label(mine[0]["item"], g.annotator, "annotator", "undone", "")
        return redirect(f"{g.base}/{mode}/{mine[0]['item']}")

    @app.get("/a/<token>/adjudicate")
    def adjudicate(token):
        if not g.adjudicator:
            abort(403, "you are not an adjudicator of this review")
        labels = g.store.review_labels()
        for mode in MODES:
            items = g.store.review_items(mode)
            queue = [i for i, d in decide(items, labels, need).items() if d["status"] == "adjudicate"]
            if queue:
                return _show(mode, queue[0], items[queue[0]], role="adjudicator")
        return page("done.html", mode="adjudicate")

    @app.get("/a/<token>/stats.json")
    def stats(token):
        return jsonify(review_metrics(g.store, need) or {})

    app.jinja_env.filters["pct"] = lambda p: "–" if p is None else f"{100 * p:.0f} %"
    app.jinja_env.filters["q"] = quote
    return app


def _maybe_cut(reply: str) -> bool:
    """A reply that stops without ending a sentence: likely cut at the token limit (replies
    carry no finish reason, so the page says "may have been")."""
    end = reply.rstrip()[-1:]
    return bool(end) and end not in ".!?…\"')]}*`:;>"


def serve(run_dir, config, host: str = "127.0.0.1", port: int = 8765, allow_hosts=(), echo=print):
    """Serve until interrupted; whoever starts it gets a personal link as owner (who may also
    adjudicate), replacing the one of the last start."""
    from werkzeug.serving import make_server
    with Store(run_dir, lock=False) as store:
        token = access.invite(store, access.owner_name(), adjudicator=True, owner=True)
        people = len(store.annotators())
    server = make_server(host, port, create_app(run_dir, config, host, allow_hosts), threaded=True)
    echo(f"cai review: {link(host, server.server_port, token)}  (your personal link; others: "
         "`cai review invite NAME`; Ctrl-C stops it, labels are saved as they are made)")
    need = config.review.annotators_per_item
    if people < need:
        echo(f"cai review: an item is decided once {need} different people label it "
             f"(review.annotators_per_item) and {people} hold a link; alone, add --set "
             "review.annotators_per_item=1 here and to the next `cai run`")
    server.serve_forever()


def link(host: str, port: int, token: str) -> str:
    import socket
    name = socket.gethostname() if host in access.ANY_ADDRESS else host
    name = f"[{name}]" if ":" in name else name
    return f"http://{name}:{port}/a/{token}/"
