"""Paging is exact: every post of a result set is reachable exactly once across pages, the total
stays the same on every page, for lexical, hybrid and date orders, grouped or not."""

from __future__ import annotations

import pytest

from contract_data import page_through, search
from paging_corpus import corpus

CORPUS = corpus()
GRAIN = {f"{p['channel']}/{p['id']}" for p in CORPUS if "зерн" in p["text"]}


@pytest.mark.parametrize("sort", ["relevance", "date", "date_asc"])
@pytest.mark.parametrize("size", [7, 25])
def test_lexical_pages_reach_every_match_once(shared, sort, size):
    seen, totals, _ = page_through(shared, "зерно", size, mode="lexical", sort=sort, group="none")
    assert totals == {len(GRAIN)}
    assert len(seen) == len(set(seen)) and set(seen) == GRAIN


@pytest.mark.parametrize("sort", ["relevance", "date", "date_asc"])
def test_hybrid_pages_reach_every_result_once(shared, sort):
    seen, totals, hits = page_through(shared, "зерно", 9, mode="hybrid", sort=sort, group="none")
    assert len(totals) == 1
    total = totals.pop()
    assert len(seen) == len(set(seen)) == total
    assert set(seen) >= GRAIN                 # every lexical match is in the hybrid result set
    if sort == "relevance" and shared.semantic_available():
        assert total >= len(GRAIN)


@pytest.mark.parametrize("sort,newest_first", [("date", True), ("date_asc", False)])
def test_date_orders_are_ordered_across_pages(shared, sort, newest_first):
    _, _, hits = page_through(shared, "зерно", 8, mode="lexical", sort=sort, group="none")
    dates = [h.date for h in hits]
    assert dates == sorted(dates, reverse=newest_first)
    _, _, both = page_through(shared, "", 11, sort=sort, group="none")
    assert len(both) == len(CORPUS)
    assert [h.date for h in both] == sorted((h.date for h in both), reverse=newest_first)


def test_grouped_pages_are_exact_too(shared):
    seen, totals, hits = page_through(shared, "зерно", 10, mode="lexical")      # default grouping
    assert len(totals) == 1 and len(seen) == len(set(seen)) == totals.pop()
    grouped = search(shared, "зерно", group="story", limit=200)
    assert grouped.total_posts == len(GRAIN)
    assert sum(h.story_matching for h in grouped.hits) == grouped.total_posts


def test_pages_concatenate_to_the_full_list(shared):
    full = [h.id for h in search(shared, "зерно", limit=200).hits]
    pages = []
    for offset in range(0, len(full), 6):
        pages += [h.id for h in search(shared, "зерно", limit=6, offset=offset).hits]
    assert pages == full
    assert search(shared, "зерно", limit=5, offset=len(full)).hits == []
