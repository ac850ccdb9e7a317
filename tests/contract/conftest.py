"""The contract suite: one set of behaviours, run against every backend through the `Backend`
protocol only (src/tgsearch/backend.py) and the public types (tgsearch.search.types).

- embedded: `EmbeddedBackend(<tmp>/db)` with vectors filled synchronously on write and stories
  placed synchronously where a test is marked `@pytest.mark.stories`;
- postgres: `open_backend(<a fresh database URL>)` (tests/pg_fixtures.py); that backend computes
  vectors and stories synchronously on write.

Tests never reach `.store`, `.index`, `.engine`, `.root` or files inside a data folder.
Inputs are invented posts written to tmp_path in the JSON Lines format (sources/jsonl.py), or the
small fixtures under tests/fixtures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from contract_data import write_jsonl

BACKENDS = ["embedded", "postgres"]
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def pytest_configure(config):
    config.addinivalue_line("markers", "stories: the test needs stories (and copies) placed on write")


def open_contract_backend(kind: str, folder: Path, *, stories: bool, url: str | None = None):
    """A fresh, empty backend of `kind`. Embedded: vectors "sync"; stories "sync" when asked
    (TGSEARCH_STORIES is read when the backend opens, so the caller sets the environment)."""
    if kind == "embedded":
        from tgsearch.backend import EmbeddedBackend

        return EmbeddedBackend(folder / "db", vectors="sync")
    from tgsearch.backend import open_backend

    assert url is not None
    return open_backend(url)


def _stories_env(monkeypatch, on: bool) -> None:
    monkeypatch.setenv("TGSEARCH_STORIES", "sync" if on else "off")
    monkeypatch.setenv("TGSEARCH_VECTORS", "sync")


@pytest.fixture(params=BACKENDS, ids=BACKENDS)
def backend(request, tmp_path, monkeypatch):
    """A fresh, empty backend (one per test)."""
    kind = request.param
    stories = request.node.get_closest_marker("stories") is not None
    _stories_env(monkeypatch, stories)
    url = request.getfixturevalue("pg_url") if kind == "postgres" else None
    b = open_contract_backend(kind, tmp_path, stories=stories, url=url)
    yield b
    b.close()


@pytest.fixture(params=BACKENDS, ids=BACKENDS, scope="module")
def backend_kind(request):
    """The backend kind, module-scoped: for the read-only corpora a module builds once (`shared`)."""
    return request.param


@pytest.fixture(scope="module")
def shared(request, backend_kind, tmp_path_factory):
    """Build a backend once per module and backend kind: the module defines `CORPUS` (a list of
    JSON Lines posts) and optionally `STORIES = True`. Tests using it must not write."""
    module = request.module
    posts = getattr(module, "CORPUS")
    stories = getattr(module, "STORIES", False)
    mp = pytest.MonkeyPatch()
    _stories_env(mp, stories)
    folder = tmp_path_factory.mktemp(f"{module.__name__.rsplit('.', 1)[-1]}-{backend_kind}")
    server = url = None
    if backend_kind == "postgres":
        server = request.getfixturevalue("pg_server")
        url = server.new_database()
    b = open_contract_backend(backend_kind, folder, stories=stories, url=url)
    try:
        report = b.ingest([write_jsonl(folder / "in" / "posts.jsonl", posts)])
        assert not report.errors, report.errors
        assert report.total("new") == len(posts)
        yield b
    finally:
        b.close()
        mp.undo()
        if server is not None:
            server.drop_database(url)


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES
