"""Snippets: the best window of a post's text, HTML-escaped, with matched word forms in <mark>.

Post text is hostile HTML: everything outside <mark> is html.escape()d, and so is the
text inside it. Matching uses the analyzer: a token is marked when its normalized form,
its lemma or a query prefix matches. To stay cheap on long articles, a regex over
word stems first finds where matches cluster; only that window is tokenized.
"""

from __future__ import annotations

import html
import re

from .lexical import Highlight

WIDTH = 260


class Highlighter:
    def __init__(self, analyzer, highlight: Highlight, width: int = WIDTH):
        self.analyzer = analyzer
        self.h = highlight
        self.width = width
        stems = {s[:max(3, min(len(s) - 2, 6))] if len(s) > 3 else s
                 for s in (highlight.lemmas | highlight.norms) if s}
        stems |= {p for p in highlight.prefixes if p}
        self.stems = tuple(sorted(stems, key=len, reverse=True))
        self.gates = {s[:2] for s in highlight.lemmas}
        self._find = re.compile("|".join(re.escape(s) for s in self.stems)) if self.stems else None

    # -- matching ------------------------------------------------------------------------------
    def matches(self, norm: str) -> bool:
        if norm in self.h.norms:
            return True
        if any(norm.startswith(p) for p in self.h.prefixes):
            return True
        # Only tokens sharing their first letters with a query lemma are lemmatized (cost bound).
        return norm[:2] in self.gates and self.analyzer.lemma(norm) in self.h.lemmas

    def _lower(self, text: str) -> str:
        low = text.lower().replace("ё", "е")
        return low if len(low) == len(text) else text

    # -- windows -------------------------------------------------------------------------------
    def best_window(self, text: str) -> tuple[int, int]:
        """Character range of about `width` chars where the most distinct stems occur."""
        if len(text) <= self.width or self._find is None:
            return 0, min(len(text), self.width)
        hits = [(m.start(), m.group()) for m in self._find.finditer(self._lower(text))]
        if not hits:
            return 0, self.width
        best, best_score, j = 0, (-1, 0), 0
        for i, (start, _) in enumerate(hits):
            while hits[j][0] < start - self.width * 2 // 3:
                j += 1
            window = hits[j:i + 1]
            score = (len({g for _, g in window}), len(window))
            if score > best_score:
                best_score, best = score, (hits[j][0] + start) // 2
        lo = max(0, best - self.width // 2)
        hi = min(len(text), lo + self.width)
        lo = max(0, hi - self.width)
        return _snap(text, lo, hi)

    def render(self, text: str, lo: int, hi: int) -> str:
        out = []
        pos = lo
        for tok in self.analyzer.tokens(text[lo:hi]):
            s, e = lo + tok.start, lo + tok.end
            if s < pos:  # a part of a code already marked whole ("Су-57" then "Су", "57")
                continue
            if self.matches(tok.norm):
                out.append(html.escape(text[pos:s]))
                out.append("<mark>" + html.escape(text[s:e]) + "</mark>")
                pos = e
        out.append(html.escape(text[pos:hi]))
        body = "".join(out).strip()
        return ("…" if lo > 0 else "") + body + ("…" if hi < len(text) else "")

    def snippet(self, text: str) -> str:
        text = text or ""
        lo, hi = self.best_window(text)
        return self.render(text, lo, hi)

    def mark(self, text: str) -> str:
        """The whole (short) text escaped with matches marked: for titles."""
        return self.render(text or "", 0, len(text or ""))


def _snap(text: str, lo: int, hi: int) -> tuple[int, int]:
    """Move the window's edges to whitespace so no word is cut in half."""
    if lo > 0:
        sp = text.rfind(" ", max(0, lo - 20), lo + 1)
        lo = sp + 1 if sp >= 0 else lo
    if hi < len(text):
        sp = text.find(" ", hi - 1, hi + 20)
        hi = sp if sp >= 0 else hi
    return lo, hi
