"""Shared test fixtures. Tests read ../shared (skipped with a reason where it is absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from testdata import FIXTURES, REPO, SHARED, shared_path  # noqa: F401 - also imported by tests from here

# No background vector filler processes from tests unless a test asks for one (tests/test_fusion.py).
os.environ.setdefault("TGSEARCH_VECTORS", "off")
os.environ.setdefault("TGSEARCH_STORIES", "off")   # tests that want stories ask for them


@pytest.fixture
def shared():
    return shared_path


@pytest.fixture
def seeds_dir() -> Path:
    return shared_path("seeds")


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture
def store(tmp_path):
    from tgsearch.store import Store

    s = Store(tmp_path / "db")
    yield s
    s.close()


from pg_fixtures import pg_server, pg_url  # noqa: E402,F401 - the PostgreSQL fixtures (tests/pg_fixtures.py)
