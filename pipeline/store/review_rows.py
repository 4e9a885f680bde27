"""The run store's rows for `cai review`: the items people review, their queue, annotators and
labels (a mixin of `Store`; only the store touches the database)."""

import time

from cai.store.files import dumps
from cai.store.migrations import transaction


class ReviewRows:

    def review_state(self) -> list:
        """How many human labels `cai review` holds and the newest: what a stage reading them
        depends on (labels are append-only)."""
        return list(self.db.execute("SELECT COUNT(*), MAX(seq) FROM review_labels").fetchone())

    # -- review: items people label and their labels (`cai review`) ----------------------------
    def put_review_items(self, items):
        """items: (id, mode, data) tuples; an existing id is kept as is."""
        now = time.time()
        with transaction(self.db):
            self.db.executemany("INSERT OR IGNORE INTO review_items (id, mode, data, created) "
                                "VALUES (?, ?, ?, ?)",
                                [(i, mode, dumps(data), now) for i, mode, data in items])

    def review_items(self, mode: str, *, queued: bool = False) -> dict:
        """id -> item of one mode ('label' or 'evaluate'), in the order they were added; with
        `queued`, only those not retired (a superseded run's items keep their labels)."""
        where = " AND retired IS NULL" if queued else ""
        return {i: self._loads(d, f"review item {i}", dict) for i, d in self.db.execute(
            f"SELECT id, data FROM review_items WHERE mode=?{where} ORDER BY created, id", (mode,))}

    def set_review_queue(self, current: set, retire: set):
        """Items back in the queue (`current`) and out of it (`retire`)."""
        self._change_in("UPDATE review_items SET retired=NULL WHERE id IN ({marks})", current)
        self._change_in("UPDATE review_items SET retired=? WHERE retired IS NULL AND id IN ({marks})",
                        retire, time.time())

    def put_annotator(self, token_hash: str, name: str, adjudicator: bool, owner: bool = False):
        """A personal review token (its hash) for `name`; an owner's replaces the last owner's."""
        with transaction(self.db):
            if owner:
                self.db.execute("DELETE FROM review_annotators WHERE owner=1")
            self.db.execute("INSERT INTO review_annotators (token_hash, name, adjudicator, owner, "
                            "created) VALUES (?, ?, ?, ?, ?)",
                            (token_hash, name, int(adjudicator), int(owner), time.time()))

    def annotator_of(self, token_hash: str) -> dict | None:
        row = self.db.execute("SELECT name, adjudicator FROM review_annotators WHERE token_hash=?",
                              (token_hash,)).fetchone()
        return {"name": row[0], "adjudicator": bool(row[1])} if row else None

    def annotators(self) -> dict:
        """name -> whether they may adjudicate, for everyone holding a token."""
        out = {}
        for name, adjudicator in self.db.execute("SELECT name, adjudicator FROM review_annotators"):
            out[name] = out.get(name, False) or bool(adjudicator)
        return out

    def put_review_label(self, item: str, annotator: str, role: str, choice: str, note: str):
        with transaction(self.db):
            self.db.execute("INSERT INTO review_labels (item, annotator, role, choice, note, created) "
                            "VALUES (?, ?, ?, ?, ?, ?)",
                            (item, annotator, role, choice, note or None, time.time()))

    def review_labels(self) -> list[dict]:
        """Every label row, oldest first (a relabel is a later row)."""
        keys = ("seq", "item", "annotator", "role", "choice", "note", "created")
        return [dict(zip(keys, row)) for row in self.db.execute(
            "SELECT seq, item, annotator, role, choice, note, created FROM review_labels ORDER BY seq")]
