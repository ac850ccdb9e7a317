"""One result per story: the ranked result set with every story's later posts folded into its
best-ranked one.

The grouped order is the ranked order of each story's first (best-ranked) post; a post that has
not been placed in a story yet stands alone. Paging reads slices of the grouped list, so hybrid
paging stays exact; the total counts stories (and posts not placed yet). A grouped list is kept
for a few seconds per search (`GroupCache`), so paging through it does not rank again.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass


@dataclass
class Group:
    item: tuple                # (post id, score, retrievers) of the story's best-ranked post
    story: int | None
    matching: int = 1          # posts of the story in this result set


def group(ranked: list[tuple], placements: dict[str, dict]) -> list[Group]:
    """Fold a ranked list by story (`placements`: post id -> {"story", ...})."""
    out: list[Group] = []
    by_story: dict[int, Group] = {}
    for item in ranked:
        placed = placements.get(item[0])
        story = placed["story"] if placed else None
        if story is None:
            out.append(Group(item, None))
            continue
        g = by_story.get(story)
        if g is None:
            g = by_story[story] = Group(item, story)
            out.append(g)
        else:
            g.matching += 1
    return out


class GroupCache:
    """A few recent grouped lists, keyed by the search and the indexes' marks."""

    def __init__(self, size: int = 32, ttl: float = 10.0):
        self.size, self.ttl = size, ttl
        self._items: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            hit = self._items.get(key)
            if hit is None or time.monotonic() - hit[0] > self.ttl:
                self._items.pop(key, None)
                return None
            self._items.move_to_end(key)
            return hit[1]

    def put(self, key, value) -> None:
        with self._lock:
            self._items[key] = (time.monotonic(), value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
