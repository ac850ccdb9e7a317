"""Export: `search_all` yields the same posts in the same order as paging through `search`, and
`export_fields` gives the derived fields of every exported post."""

from __future__ import annotations

import pytest

from contract_data import page_through
from paging_corpus import corpus
from tgsearch.search.types import SearchRequest

CORPUS = corpus()


@pytest.mark.parametrize("mode,sort", [("lexical", "relevance"), ("hybrid", "relevance"), ("lexical", "date"),
                                       ("hybrid", "date_asc")])
def test_search_all_yields_the_paged_ids_in_order(shared, mode, sort):
    seen, totals, _ = page_through(shared, "зерно", 13, mode=mode, sort=sort, group="none")
    total, posts = shared.search_all(SearchRequest(q="зерно", mode=mode, sort=sort, group="none"))
    exported = [p.id for p in posts]
    assert {total} == totals and exported == seen


def test_search_all_with_filters_and_everything(shared):
    total, posts = shared.search_all(SearchRequest(q="channel:city_life", group="none"))
    assert total == 6 and sorted(p.id for p in posts) == [f"city_life/{300 + k}" for k in range(6)]
    total, posts = shared.search_all(SearchRequest(q="", group="none"))
    assert total == len(CORPUS) and len({p.id for p in posts}) == len(CORPUS)


def test_export_fields_for_every_exported_post(shared):
    total, posts = shared.search_all(SearchRequest(q="зерно", mode="lexical", group="none"))
    posts = list(posts)
    fields = shared.export_fields([p.id for p in posts])
    assert set(fields) == {p.id for p in posts}
    for pid, f in fields.items():
        assert {"articles", "cited_by", "story", "copy_of", "entities"} <= set(f), (pid, f)
        assert isinstance(f["articles"], list) and isinstance(f["cited_by"], list)
        assert isinstance(f["entities"], list)
