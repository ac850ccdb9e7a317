"""The collectors' surface: both backends carry CollectAPI, and the collectors reach the store only
through it (collect/backend_api.py)."""

import re
from pathlib import Path

import pytest

import tgsearch.collect
from tgsearch.backend import EmbeddedBackend
from tgsearch.collect.backend_api import CollectAPI
from tgsearch.errors import StoreError

COLLECT = Path(tgsearch.collect.__file__).parent
API = [name for name, value in vars(CollectAPI).items() if callable(value) and not name.startswith("_")]


def test_collect_api_names_what_the_collectors_use():
    assert {"write_posts", "write_deleted", "get_cursor", "set_cursor", "get_sync_cursor", "set_sync_cursor",
            "sync_channel_of_peer", "recent_messages", "posts_with_message", "pending_links", "record_link",
            "link_outcomes", "record_source_run", "source_runs"} <= set(API)


@pytest.mark.parametrize("name", ["embedded", "pg"])
def test_both_backends_have_every_collect_method(name):
    if name == "pg":
        pytest.importorskip("psycopg")
        from tgsearch.pg.backend import PgBackend as cls
    else:
        cls = EmbeddedBackend
    assert issubclass(cls, CollectAPI)
    missing = [m for m in API if getattr(cls, m, None) is not getattr(CollectAPI, m)]
    assert missing == [], f"{cls.__name__} lacks or overrides {missing}"


def test_no_collector_reaches_into_the_store():
    files = sorted(p for p in COLLECT.glob("*.py") if p.name != "backend_api.py")
    assert len(files) > 5
    found = []
    for path in files:
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(r"\.store\b", code) and not code.lstrip().startswith(("from ", "import ")):
                found.append(f"{path.name}:{n}: {line.strip()}")
    assert found == [], "use the backend's CollectAPI methods:\n" + "\n".join(found)


def test_collector_writes_refuse_a_read_only_backend_before_writing(tmp_path):
    from tgsearch.post import Post

    EmbeddedBackend(tmp_path / "db", vectors="off").close()
    backend = EmbeddedBackend(tmp_path / "db", create=False, read_only=True)
    try:
        writes = (lambda: backend.write_posts([Post(id="river/1", channel="river", text="Паводок")]),
                  lambda: backend.write_deleted(["river/1"]),
                  lambda: backend.set_cursor("river", newest=2, oldest=1, complete=True),
                  lambda: backend.set_sync_cursor("river", last_id=2, complete=True),
                  lambda: backend.record_link("https://example.org/a", "failed", reason="x"),
                  lambda: backend.record_source_run("crawl:river", "2026-05-01T10:00:00Z", None, 0))
        for write in writes:
            with pytest.raises(StoreError, match="read-only"):
                write()
        assert backend.store.count() == 0 and backend.get_cursor("river") is None
        assert backend.get_sync_cursor("river") is None and backend.source_runs() == {}
        assert backend.link_outcomes() == {}
    finally:
        backend.close()
