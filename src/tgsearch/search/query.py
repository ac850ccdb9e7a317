"""The query language: a tokenizer and a recursive-descent parser producing an AST.

Grammar (operators are upper-case; lower-case `or`/`and`/`not` are plain words):

    query    := or_expr EOF
    or_expr  := seq ( "OR" seq )*
    seq      := unary ( ["AND"] unary )*       juxtaposition = ranked, AND = required
    unary    := "NOT" unary | "-" primary | primary
    primary  := "(" or_expr ")" | ["="] PHRASE | ["="] WORD ["*"] | FIELD ":" VALUE

The AST knows nothing about tantivy; `search.lexical` compiles it. Every node keeps the
0-based character offset it came from so errors (and the UI) can point at it.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date

from ..errors import QueryError

FIELDS = ("channel", "since", "until", "kind", "has", "publication", "person", "org", "place")
KIND_VALUES = ("post", "article")
HAS_VALUES = ("link",)


# -- AST ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Word:
    text: str
    pos: int
    exact: bool = False      # =word: exact form, no lemmatization
    prefix: bool = False     # word*: any form starting with it


@dataclass(frozen=True)
class Phrase:
    text: str
    pos: int
    exact: bool = False      # ="...": exact forms in order; "..." = lemmas in order


@dataclass(frozen=True)
class Filter:
    name: str                # one of FIELDS
    value: object            # str for channel/kind/has/publication, date for since/until
    pos: int
    raw: str = ""


@dataclass(frozen=True)
class Not:
    child: "Node"
    pos: int


@dataclass(frozen=True)
class Or:
    children: tuple["Node", ...]
    pos: int


@dataclass(frozen=True)
class Seq:
    """Juxtaposed clauses: `required[i]` true where joined by AND (must match), else ranked."""

    children: tuple["Node", ...]
    required: tuple[bool, ...]
    pos: int


Node = Word | Phrase | Filter | Not | Or | Seq


@dataclass(frozen=True)
class Query:
    text: str
    root: Node | None        # None for an empty query (filters only / browse)
    notices: tuple[str, ...] = ()   # how malformed parts were read (stray quotes, brackets, operators)

    def walk(self):
        return walk(self.root)


def walk(node):
    """Every node, depth first (children after parent)."""
    if node is None:
        return
    yield node
    if isinstance(node, Not):
        yield from walk(node.child)
    elif isinstance(node, (Or, Seq)):
        for child in node.children:
            yield from walk(child)


def positive_terms(node, negated: bool = False):
    """Words and phrases that a matching post may contain (not under NOT): what to highlight."""
    if node is None:
        return
    if isinstance(node, (Word, Phrase)):
        if not negated:
            yield node
    elif isinstance(node, Not):
        yield from positive_terms(node.child, not negated)
    elif isinstance(node, (Or, Seq)):
        for child in node.children:
            yield from positive_terms(child, negated)


# -- tokenizer ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Lexeme:
    kind: str        # LPAREN RPAREN OR AND NOT MINUS WORD PHRASE FIELD
    text: str
    pos: int
    exact: bool = False
    prefix: bool = False
    value_pos: int = 0


_SPACE = re.compile(r"\s+")
_WORD = re.compile(r'[^\s()"]+')
_FIELD = re.compile(r"([A-Za-z_]+):(?!//)")


def tokenize(text: str, notices: list[str] | None = None) -> list[Lexeme]:
    """Lexemes of a query. Malformed pieces are read leniently and each reading is appended to
    `notices` (an unclosed quote runs to the end, an unknown field is a word, ...)."""
    notices = notices if notices is not None else []
    out: list[Lexeme] = []
    i, n = 0, len(text)
    while i < n:
        m = _SPACE.match(text, i)
        if m:
            i = m.end()
            continue
        ch = text[i]
        if ch == "(":
            out.append(Lexeme("LPAREN", ch, i))
            i += 1
            continue
        if ch == ")":
            out.append(Lexeme("RPAREN", ch, i))
            i += 1
            continue
        if ch == '"' or (ch == "=" and text.startswith('="', i)):
            start = i
            exact = ch == "="
            q = i + 1 if exact else i
            end = text.find('"', q + 1)
            if end < 0:
                end = n
                if text[q + 1:].strip():
                    notices.append(f"the quote at {q + 1} is never closed: read as a phrase to the end of the query")
                else:
                    notices.append(f"the quote at {q + 1} is never closed: ignored")
            if text[q + 1:end].strip():
                out.append(Lexeme("PHRASE", text[q + 1:end], start, exact=exact))
            elif end < n:
                notices.append(f"empty quotes at {q + 1}: ignored")
            i = end + 1
            continue
        if ch == "-" and i + 1 < n and not text[i + 1].isspace() and text[i + 1] != ")" \
                and (not out or out[-1].kind != "WORD" or i == 0 or text[i - 1].isspace() or text[i - 1] == "("):
            out.append(Lexeme("MINUS", ch, i))
            i += 1
            continue
        fm = _FIELD.match(text, i)
        if fm:
            name = fm.group(1)
            if name.lower() not in FIELDS:
                notices.append(f"{name}: is not a field (known: {', '.join(FIELDS)}): read as words")
                i = fm.end() - 1   # the name becomes a word below; the colon is skipped
                out.append(Lexeme("WORD", name, fm.start()))
                i = fm.end()
                continue
            j = fm.end()
            if j < n and text[j] == '"':
                end = text.find('"', j + 1)
                if end < 0:
                    notices.append(f"the quote at {j + 1} is never closed: read to the end of the query")
                    end = n
                value = text[j + 1:end]
                nxt = end + 1
            else:
                vm = _WORD.match(text, j)
                value = vm.group(0) if vm else ""
                nxt = vm.end() if vm else j
            if not value.strip():
                raise QueryError(f"{name}: needs a value, e.g. {_example(name.lower())}", text, i)
            value_pos = j + 1 if text[j:j + 1] == '"' else j
            out.append(Lexeme("FIELD", f"{name.lower()}\x00{value}", i, value_pos=value_pos))
            i = nxt
            continue
        m = _WORD.match(text, i)
        word = m.group(0)
        if word in ("OR", "AND", "NOT"):
            out.append(Lexeme(word, word, i))
            i = m.end()
            continue
        if word == "|":
            out.append(Lexeme("OR", word, i))
            i = m.end()
            continue
        exact = word.startswith("=")
        body = word[1:] if exact else word
        prefix = body.endswith("*")
        body = body.rstrip("*") if prefix else body
        if not body.strip("-=*"):
            notices.append(f"{word!r} at {i + 1} is not a word: ignored")
            i = m.end()
            continue
        if "*" in body:
            notices.append(f"* at {i + word.index('*') + 1} only works at the end of a word: read as a space")
            pieces = [p for p in body.split("*") if p]
            for k, piece in enumerate(pieces):
                out.append(Lexeme("WORD", piece, i, exact=exact, prefix=prefix and k == len(pieces) - 1))
        else:
            out.append(Lexeme("WORD", body, i, exact=exact, prefix=prefix))
        i = m.end()
    return out


MAX_DEPTH = 32   # brackets nested deeper are read as plain grouping (they change nothing there)
_OPERATORS = ("OR", "AND")
_NEGATIONS = ("NOT", "MINUS")


def _positions(values: list[int]) -> str:
    return ", ".join(map(str, values[:5])) + (f" and {len(values) - 5} more" if len(values) > 5 else "")


def repair(text: str, lexemes: list[Lexeme], notices: list[str]) -> list[Lexeme]:
    """Make a lexeme list parseable, the way a person pasting text meant it: stray brackets are
    dropped, unclosed ones closed at the end, brackets nested past MAX_DEPTH and double negations
    removed, and operators with nothing to join read as words. Each change adds a notice."""
    lx = list(lexemes)
    # 1. brackets: match them; drop strays, the unclosed and empty pairs, and those nested too deep
    drop: set[int] = set()
    stack: list[int] = []
    stray, deep = [], 0
    for k, item in enumerate(lx):
        if item.kind == "LPAREN":
            stack.append(k)
        elif item.kind == "RPAREN":
            if stack:
                opened = stack.pop()
                if len(stack) >= MAX_DEPTH:
                    drop |= {opened, k}
                    deep += 1
                elif all(j in drop for j in range(opened + 1, k)):
                    drop |= {opened, k}
                    notices.append(f"empty brackets at {lx[opened].pos + 1}: ignored")
            else:
                drop.add(k)
                stray.append(item.pos + 1)
    if stray:
        notices.append(f"the ) at {_positions(stray)} {'has' if len(stray) == 1 else 'have'} no matching (: ignored")
    if stack:
        drop.update(stack)
        notices.append(f"the ( at {_positions([lx[k].pos + 1 for k in stack])} "
                       f"{'is' if len(stack) == 1 else 'are'} never closed: ignored")
    if deep:
        notices.append(f"brackets nested deeper than {MAX_DEPTH} levels: read as one group")
    lx = [item for k, item in enumerate(lx) if k not in drop]
    # 2. runs of NOT / - : an even number cancels out, an odd one is one negation
    out: list[Lexeme] = []
    k = 0
    while k < len(lx):
        if lx[k].kind in _NEGATIONS:
            j = k
            while j < len(lx) and lx[j].kind in _NEGATIONS:
                j += 1
            if j - k > 1:
                notices.append(f"{j - k} negations in a row at {lx[k].pos + 1}: read as "
                               + ("one" if (j - k) % 2 else "none"))
            if (j - k) % 2:
                out.append(lx[k])
            k = j
            continue
        out.append(lx[k])
        k += 1
    lx = out
    # 3. operators with nothing to join: words (NOT/AND/OR) or nothing (a lone -)
    changed = True
    while changed:
        changed = False
        for k, item in enumerate(lx):
            before = lx[k - 1].kind if k else None
            after = lx[k + 1].kind if k + 1 < len(lx) else None
            if item.kind in _OPERATORS and (before in (None, "LPAREN") + _OPERATORS + _NEGATIONS
                                            or after in (None, "RPAREN") + _OPERATORS):
                lx[k] = Lexeme("WORD", item.text, item.pos)
            elif item.kind in _NEGATIONS and after in (None, "RPAREN") + _OPERATORS:
                if item.kind == "NOT":
                    lx[k] = Lexeme("WORD", item.text, item.pos)
                else:
                    del lx[k]
            else:
                continue
            notices.append(f"{item.text!r} at {item.pos + 1} has nothing to apply to: read as a word"
                           if item.kind != "MINUS" else f"the - at {item.pos + 1} has nothing to apply to: ignored")
            changed = True
            break
    return lx


def _example(name: str) -> str:
    return {"since": "since:2025-05-01", "until": "until:2025-05-31", "kind": "kind:article",
            "has": "has:link", "channel": "channel:rian_ru", "publication": "publication:Reuters",
            "person": "person:Токаев", "org": "org:ОДКБ", "place": 'place:"Нур-Султан"'}[name]


# -- parser ------------------------------------------------------------------------------------
class _Parser:
    def __init__(self, text: str, lexemes: list[Lexeme]):
        self.text = text
        self.lx = lexemes
        self.i = 0

    def peek(self) -> Lexeme | None:
        return self.lx[self.i] if self.i < len(self.lx) else None

    def take(self) -> Lexeme:
        lx = self.lx[self.i]
        self.i += 1
        return lx

    def error(self, message: str, pos: int):
        raise QueryError(message, self.text, pos)

    def parse(self) -> Node | None:
        if not self.lx:
            return None
        node = self.or_expr()
        nxt = self.peek()
        if nxt is not None:
            if nxt.kind == "RPAREN":
                self.error("unbalanced parenthesis: this ) has no matching (", nxt.pos)
            self.error(f"unexpected {nxt.text!r}", nxt.pos)  # pragma: no cover - or_expr consumes the rest
        return node

    def or_expr(self) -> Node:
        first = self.peek()
        children = [self.seq()]
        while (lx := self.peek()) is not None and lx.kind == "OR":
            self.take()
            nxt = self.peek()
            if nxt is None or nxt.kind in ("OR", "AND", "RPAREN"):
                self.error("dangling OR: nothing after it", lx.pos)
            children.append(self.seq())
        return children[0] if len(children) == 1 else Or(tuple(children), first.pos)

    def seq(self) -> Node:
        first = self.peek()
        if first is None:
            self.error("query ends where a word was expected", len(self.text))
        if first.kind in ("OR", "AND"):
            self.error(f"dangling {first.kind}: nothing before it", first.pos)
        children: list[Node] = []
        required: list[bool] = []
        pending_and = False
        while (lx := self.peek()) is not None and lx.kind not in ("OR", "RPAREN"):
            if lx.kind == "AND":
                self.take()
                nxt = self.peek()
                if nxt is None or nxt.kind in ("OR", "AND", "RPAREN"):
                    self.error("dangling AND: nothing after it", lx.pos)
                if required:
                    required[-1] = True
                pending_and = True
                continue
            children.append(self.unary())
            required.append(pending_and)
            pending_and = False
        if len(children) == 1 and not required[0]:
            return children[0]
        return Seq(tuple(children), tuple(required), first.pos)

    def unary(self) -> Node:
        lx = self.take()
        if lx.kind == "NOT":
            nxt = self.peek()
            if nxt is None or nxt.kind in ("OR", "AND", "RPAREN"):
                self.error("dangling NOT: nothing after it", lx.pos)
            return Not(self.unary(), lx.pos)
        if lx.kind == "MINUS":
            nxt = self.peek()
            if nxt is None or nxt.kind in ("OR", "AND", "RPAREN", "NOT", "MINUS"):
                self.error("- must be followed by a word, phrase or (group)", lx.pos)
            return Not(self.primary(self.take()), lx.pos)
        return self.primary(lx)

    def primary(self, lx: Lexeme) -> Node:
        if lx.kind == "LPAREN":
            nxt = self.peek()
            if nxt is None:
                self.error("unbalanced parenthesis: this ( is never closed", lx.pos)
            if nxt.kind == "RPAREN":
                self.error("empty parentheses", lx.pos)
            node = self.or_expr()
            close = self.peek()
            if close is None or close.kind != "RPAREN":
                self.error("unbalanced parenthesis: this ( is never closed", lx.pos)
            self.take()
            return node
        if lx.kind == "RPAREN":
            self.error("unbalanced parenthesis: this ) has no matching (", lx.pos)
        if lx.kind in ("OR", "AND"):
            self.error(f"dangling {lx.kind}: nothing before it", lx.pos)
        if lx.kind == "PHRASE":
            if not lx.text.strip():
                self.error("empty phrase", lx.pos)
            return Phrase(lx.text, lx.pos, exact=lx.exact)
        if lx.kind == "FIELD":
            name, value = lx.text.split("\x00", 1)
            return Filter(name, _field_value(name, value, self.text, lx.value_pos), lx.pos, raw=value)
        return Word(lx.text, lx.pos, exact=lx.exact, prefix=lx.prefix)


def _field_value(name: str, value: str, text: str, pos: int):
    if name in ("since", "until"):
        return parse_day(value, text, pos, end=name == "until")
    if name == "kind":
        if value.lower() not in KIND_VALUES:
            raise QueryError(f"kind: must be one of {', '.join(KIND_VALUES)}, not {value!r}", text, pos)
        return value.lower()
    if name == "has":
        if value.lower() not in HAS_VALUES:
            raise QueryError(f"has: must be one of {', '.join(HAS_VALUES)}, not {value!r}", text, pos)
        return value.lower()
    return value


def day_param(value: str | None, name: str, *, end: bool = False) -> date | None:
    """A request parameter holding a day (YYYY-MM-DD, YYYY-MM or YYYY; `end`: its last day), None
    when empty; a QueryError naming the parameter otherwise."""
    if not value:
        return None
    try:
        return parse_day(value, value, 0, end=end)
    except QueryError as e:
        raise QueryError(f"{name}: {e.reason}", value, None) from None


_DAY = re.compile(r"(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?")


def parse_day(value: str, text: str = "", pos: int | None = None, *, end: bool = False) -> date:
    """YYYY-MM-DD, YYYY-MM or YYYY; a partial date means its first day (or last, for `until`)."""
    m = _DAY.fullmatch(value.strip())
    try:
        if not m:
            raise ValueError
        year = int(m.group(1))
        month = int(m.group(2)) if m.group(2) else (12 if end else 1)
        if m.group(3):
            day = int(m.group(3))
        else:
            day = calendar.monthrange(year, month)[1] if end else 1
        return date(year, month, day)
    except ValueError:
        raise QueryError(f"bad date {value!r} (use YYYY-MM-DD, e.g. 2025-05-01)", text or value,
                         pos if pos is not None else 0) from None


def parse(text: str) -> Query:
    """Parse a query string leniently (see `repair`); QueryError(message, query, position) only
    where a part cannot mean anything (`since:` without a date, `kind:video`)."""
    text = text or ""
    notices: list[str] = []
    lexemes = repair(text, tokenize(text, notices), notices)
    return Query(text, _Parser(text, lexemes).parse(), tuple(dict.fromkeys(notices)))
