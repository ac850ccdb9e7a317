"""Where test data lives: the repo's fixtures and ../shared (a test skips with the reason when it is absent).
Imported by tests as `from testdata import ...` (a module name no other file shares; `conftest` is
ambiguous once tests/contract/ has its own)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("TGSEARCH_SHARED", REPO.parent / "shared"))
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def shared_path(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path} (tests read ../shared beside the checkout)")
    return path
