"""What saved searches and alerts need from a backend: the `AlertsAPI` mixin both backends inherit
(EmbeddedBackend in backend.py, PgBackend in pg/backend.py). alerts/check.py, cli_alerts.py and
web/alerts.py use these methods (and the Backend protocol's `story`, `get_many`) and nothing else.

Marks: a saved search keeps a mark; `changed_since(mark)` gives the posts written after it and the
mark to keep once they are checked.
- data folder: a store version. Versions are stamped by one writer in commit order, so "written
  after" is "version above the mark"; a post is ready once the lexical index and (stories on) the
  stories index have reached its version.
- PostgreSQL: a transaction-id mark (PgStore.snapshot_mark / iter_changed): versions come from a
  sequence and transactions commit out of version order, so a version mark could pass a post that
  commits late. The lexical rows are written in the post's own transaction (always current); a
  post is ready once the stories index has placed it (changed before `stories.index.mark()`).
In both, the new mark never passes a post that is not ready: the next check sees it again.
"""

from __future__ import annotations

import os

from ..search.types import SearchRequest

CHUNK = 1000              # ids per lexical `matching` call


class AlertsAPI:
    """Mixed into a backend (`self.store`, `self.engine`, `self.stories`, `self.read_only`, and
    `self.root` for a data folder)."""

    # -- which kind of marks ---------------------------------------------------------------------
    def _alerts_by_xid(self) -> bool:
        """True on a store whose versions may commit out of order (PostgreSQL): transaction-id marks."""
        return callable(getattr(self.store, "snapshot_mark", None))

    def _alert_stories(self):
        """The stories index alerts group by (the one grouped search uses), or None (stories off)."""
        return self.engine.stories

    # -- the saved searches' store ---------------------------------------------------------------
    def alert_store(self, *, create: bool = True):
        """The saved searches and alerts of this backend (an AlertStore: close it when done):
        a data folder's `alerts.sqlite`, or the alerts tables in the PostgreSQL database. With
        `create=False`, None when nothing was ever saved here (no file or table is made)."""
        from .store import FILE, AlertStore, PgAlertStore

        if self._alerts_by_xid():
            if not create and not PgAlertStore.exists(self.store):
                return None
            return PgAlertStore(self.store, create=not getattr(self, "read_only", False))
        if not create and not (self.root / FILE).exists():
            return None
        return AlertStore(self.root)

    def alert_mark(self) -> int:
        """The mark a search saved now starts from: only posts written after it alert."""
        if self._alerts_by_xid():
            return self.store.snapshot_mark()
        return self.store.max_version()

    # -- what changed, and whether it can be checked yet -----------------------------------------
    def changed_since(self, mark: int) -> tuple[int, list[tuple]]:
        """(new mark, [(post, ready)]): every post (deleted ones too) written after `mark`, oldest
        first, and whether the lexical index and the stories index (when stories are on) have
        reached it. The new mark is the furthest a check may move to: past every ready post and
        before every one that is not."""
        mark = int(mark)
        stories = self._alert_stories()
        if self._alerts_by_xid():
            until = self.store.snapshot_mark()         # every transaction below it has ended
            placed = min(until, stories.mark()) if stories is not None else until
            placed = max(placed, mark)
            out = [(p, True) for p in self.store.iter_changed(mark, placed)]
            out += [(p, False) for p in self.store.iter_changed(placed, until)]
            return placed, out
        top = self.store.max_version()
        ready = min(top, self.index.hwm())
        if stories is not None:
            ready = min(ready, stories.hwm())
        out = []
        for version, post in self.store.iter_since(mark):
            if version > top:          # a write since `top` is the next check's
                break
            out.append((post, version <= ready))
        return max(mark, ready), out

    def wait_alerts_ready(self, timeout: float | None = None) -> bool:
        """Before a check: bring the stories up to the store (here, or by waiting for the process
        placing them), at most `timeout` seconds (env TGSEARCH_STORIES_WAIT, default 300). False
        when stories are off, the backend is read-only, or the time ran out."""
        stories = self.stories
        if getattr(stories, "mode", "off") == "off" or getattr(self, "read_only", False):
            return False
        if timeout is None:
            timeout = float(os.environ.get("TGSEARCH_STORIES_WAIT", "300"))
        return bool(stories.wait_caught_up(timeout))

    # -- matching and stories --------------------------------------------------------------------
    def matching_ids(self, query: str, channels=(), ids: list[str] = ()) -> set[str]:
        """The ids among `ids` that the lexical search of `query` (restricted to `channels`, when
        given) matches. QueryError for a query that does not parse."""
        ids = list(ids)
        if not ids:
            return set()
        engine = self._alerts_engine()
        plan = engine.plan(SearchRequest(q=query, channels=tuple(channels), group="none", mode="lexical"))
        hit: set[str] = set()
        for start in range(0, len(ids), CHUNK):
            hit |= engine.lexical.matching(plan.compiled, ids[start:start + CHUNK], plan.searcher)
        return hit

    def _alerts_engine(self):
        """The engine whose lexical side has every post `changed_since` gives: searches may read a
        replica that lags behind (PgBackend.reader); alerts read the primary."""
        reader = getattr(self, "reader", None)
        if reader is None or reader is self.store:
            return self.engine
        engine = getattr(self, "_alerts_primary_engine", None)
        if engine is None:
            from ..pg import lexical_sql
            from ..search.engine import Engine

            store = self.store
            lexical = lexical_sql.PgLexical(lambda: store.conn, self.analyzer, None, hwm=store.max_version)
            engine = Engine(store, lexical)
            lexical.resolve = engine.resolve
            self._alerts_primary_engine = engine
        return engine

    def story_placements(self, ids: list[str]) -> dict[str, dict]:
        """post id -> its placement {"story", "copy_of", ...} for the placed posts among `ids`;
        {} when stories are off."""
        stories = self._alert_stories()
        if stories is None or not ids:
            return {}
        return stories.placements(list(ids))
