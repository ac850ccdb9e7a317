"""`tgsearch export --format digest`: the seed digest channel's format, read back losslessly."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path

import pytest
from click.testing import CliRunner

from tgsearch.backend import open_backend
from tgsearch.cli import main
from tgsearch.export_digest import DOWN, FINAL, MESSAGE_LIMIT, UP, messages, units, write_digest
from tgsearch.post import Post
from tgsearch.sources import ReadContext, detect

FIELDS = ("publication", "publication_country", "author", "date", "source_url", "title", "text")


def file_messages(text: str) -> list[str]:
    """Cut a digest file into its Telegram messages: a marker line closes or opens one, and a
    post that fits in one message ends where the next "Издание:" line begins."""
    out: list[list[str]] = []
    cur: list[str] = []
    for line in text.rstrip("\n").split("\n"):
        if (line == UP or (line.startswith("Издание:") and not (cur and cur[0] == UP))) and cur:
            out.append(cur)
            cur = []
        cur.append(line)
        if line in (DOWN, FINAL):
            out.append(cur)
            cur = []
    if cur:
        out.append(cur)
    return ["\n".join(m) for m in out]


def check_messages(text: str) -> list[str]:
    msgs = file_messages(text)
    for msg in msgs:
        assert len(msg) <= MESSAGE_LIMIT and units(msg) <= MESSAGE_LIMIT, (len(msg), units(msg), msg[:80])
    return msgs


def read_back(path: Path) -> list[Post]:
    reader = detect(path)
    assert reader.NAME == "text-dump"
    ctx = ReadContext(str(path))
    posts = list(reader.read(path, ctx))
    assert not ctx.errors
    assert all(w.endswith("digest post without a headline") for w in ctx.warnings)
    return posts


def ingested(db: Path) -> list[Post]:
    backend = open_backend(str(db), create=False)
    try:
        return list(backend.iter_posts())
    finally:
        backend.close()


# -- the seed channel ----------------------------------------------------------------------------------------

def test_seed_digest_posts_round_trip_through_the_cli(tmp_path, seeds_dir):
    seed = sorted(seeds_dir.glob("000_*.txt"))
    if not seed:
        pytest.skip(f"no 000_*.txt seed in {seeds_dir}")
    runner = CliRunner()
    db1, db2 = tmp_path / "db1", tmp_path / "db2"
    res = runner.invoke(main, ["ingest", str(seed[0]), "--db", str(db1), "--quiet"])
    assert res.exit_code == 0, res.output
    original = [p for p in ingested(db1) if p.publication]
    assert len(original) >= 5  # the seed is a digest channel

    out = tmp_path / "out" / "digest.txt"
    out.parent.mkdir()
    res = runner.invoke(main, ["export", "--db", str(db1), "--format", "digest", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert f"exported {len(original)} digest posts" in res.stderr
    text = out.read_text(encoding="utf-8")
    msgs = check_messages(text)
    assert "\n".join(msgs) + "\n" == text

    res = runner.invoke(main, ["ingest", str(out), "--db", str(db2), "--quiet", "--json"])
    assert res.exit_code == 0, res.output
    assert '"text-dump"' in res.stdout
    back = {p.source_url: p for p in ingested(db2)}
    assert len(back) == len(original)
    for post in original:
        again = back[post.source_url]
        for name in FIELDS:
            assert getattr(again, name) == getattr(post, name), (post.title, name)
        parts = messages(post)
        assert "\n".join(parts) in text
        if len(parts) > 1:
            assert parts[0].endswith("\n" + DOWN) and not parts[0].startswith(UP)
            assert all(m.startswith(UP + "\n") and m.endswith("\n" + DOWN) for m in parts[1:-1])
            assert parts[-1].startswith(UP + "\n") and parts[-1].endswith("\n" + FINAL)
    # The seed's posts are longer than one message: they come out split, as the channel prints them.
    assert sum(len(messages(p)) > 1 for p in original) >= 5


def test_seed_post_header_reads_like_the_channel(tmp_path, seeds_dir):
    seed = sorted(seeds_dir.glob("000_*.txt"))
    if not seed:
        pytest.skip(f"no 000_*.txt seed in {seeds_dir}")
    posts = [p for p in read_back(seed[0]) if p.publication]
    for post in posts:
        first = messages(post)[0].split("\n")
        assert first[0] == f"Издание: {post.publication}" + (f" ({post.publication_country})" if post.publication_country else "")
        assert first[1] == "" and first[2] == post.title
        fields = [line for line in first if re.match(r"^(Автор|Дата|Ссылка): ", line)]
        if post.author:
            assert f"Автор: {post.author}" in fields
        assert f"Дата: {post.date:%d.%m.%Y} г." in fields
        assert fields[-1] == f"Ссылка: {post.source_url}"


def test_export_digest_of_a_search_writes_only_its_results(tmp_path, seeds_dir):
    seed = sorted(seeds_dir.glob("000_*.txt"))
    if not seed:
        pytest.skip(f"no 000_*.txt seed in {seeds_dir}")
    runner = CliRunner()
    db = tmp_path / "db"
    assert runner.invoke(main, ["ingest", str(seed[0]), "--db", str(db), "--quiet"]).exit_code == 0
    res = runner.invoke(main, ["export", "--db", str(db), "--format", "digest", "--q", "Байконур", "--mode", "lexical"])
    assert res.exit_code == 0, res.output
    heads = [line for line in res.stdout.split("\n") if line.startswith("Издание:")]
    assert 1 <= len(heads) < 6
    assert all("Байконур" in msg or msg.startswith(UP) for msg in file_messages(res.stdout) if msg.startswith("Издание:"))


# -- posts made up here ----------------------------------------------------------------------------------------

DAY = datetime(2025, 3, 7, tzinfo=timezone.utc)


def digest_post(n: int, text: str, title: str = "", **fields) -> Post:
    values = dict(publication="Степной обозреватель", publication_country="Казахстан", author="Ирина Петрова",
                  date=DAY, source_url=f"https://example.org/articles/{n}")
    values.update(fields)
    return Post(id=f"made/{n}", channel="made", text=text, title=title, **values)


def sentence(i: int) -> str:
    return (f"Предложение номер {i} рассказывает о переговорах делегаций в Астане и о торговле через Каспий, "
            f"а также о планах на {2025 + i % 5} год.")


def paragraph(i: int, sentences: int = 4) -> str:
    return " ".join(sentence(i * 10 + k) for k in range(sentences))


def roundtrip(tmp_path: Path, posts: list[Post]) -> tuple[list[Post], list[str], dict]:
    out = tmp_path / "made-digest.txt"
    counts: dict = {}
    with open(out, "w", encoding="utf-8") as f:
        write_digest(posts, f, counts=counts)
    msgs = check_messages(out.read_text(encoding="utf-8"))
    return read_back(out), msgs, counts


def assert_same(a: Post, b: Post) -> None:
    for name in FIELDS:
        assert getattr(a, name) == getattr(b, name), name


def test_long_post_with_many_paragraphs_is_split_at_paragraphs_and_read_back_whole(tmp_path):
    title = "КАЗАХСТАН И КАСПИЙСКИЙ ТРАНЗИТ"
    lead = "Подзаголовок статьи: что меняется для торговли."
    sections = []
    for s in range(6):
        sections.append("\n".join([f"Раздел {s + 1}"] + [paragraph(s * 10 + p) for p in range(4)]))
    text = f"{title}\n{lead}\n\n" + "\n\n".join(sections)
    assert len(text) > 10_000
    post = digest_post(1, text, title)
    (back,), msgs, counts = roundtrip(tmp_path, [post])
    assert_same(post, back)
    assert counts == {"written": 1, "skipped": 0, "messages": len(msgs)}
    assert len(msgs) >= 3
    assert msgs[0].endswith(DOWN) and msgs[-1].startswith(UP) and msgs[-1].endswith(FINAL)
    # Cut only between whole paragraphs: every paragraph of the text is in one message.
    for para in text.split("\n"):
        assert sum(para in m for m in msgs) >= 1


def test_paragraphs_separated_by_blank_lines_lose_only_the_blank_at_a_cut(tmp_path):
    text = "\n\n".join(paragraph(p) for p in range(30))
    post = digest_post(2, text)
    (back,), msgs, _ = roundtrip(tmp_path, [post])
    assert len(msgs) > 2
    for name in FIELDS[:-1]:
        assert getattr(back, name) == getattr(post, name)
    assert re.sub(r"\n+", "\n", back.text) == re.sub(r"\n+", "\n", post.text)
    assert back.text.count("\n\n") == post.text.count("\n\n") - (len(msgs) - 1)


def test_one_giant_paragraph_is_cut_at_sentence_ends(tmp_path):
    giant = " ".join(sentence(i) for i in range(120))
    assert len(giant) > 3 * MESSAGE_LIMIT
    title = "Один огромный абзац"
    post = digest_post(3, f"{title}\n\n{giant}\nПоследний абзац.", title)
    (back,), msgs, _ = roundtrip(tmp_path, [post])
    assert len(msgs) >= 4
    for name in FIELDS[:-1]:
        assert getattr(back, name) == getattr(post, name)
    body = back.text.split("\n\n", 1)[1].split("\n")
    assert all(line.endswith(".") for line in body)  # every cut fell after a sentence
    assert " ".join(body[:-1]) == giant and body[-1] == "Последний абзац."


def test_a_paragraph_without_sentence_ends_is_cut_between_words(tmp_path):
    words = " ".join(f"слово{i}" for i in range(2500))
    post = digest_post(4, words)
    (back,), msgs, _ = roundtrip(tmp_path, [post])
    assert len(msgs) >= 4
    assert " ".join(back.text.split("\n")) == words
    assert all(re.fullmatch(r"слово\d+", w) for line in back.text.split("\n") for w in line.split(" "))


def test_html_ish_text_emoji_and_limits_in_utf16(tmp_path):
    title = "<b>«Тег» & \"кавычки\"</b> 🇰🇿🚀"
    html = "<script>alert('x')</script> &amp; <a href=\"javascript:void(0)\">ссылка</a> <!-- комментарий -->"
    # Astral characters count two UTF-16 units each, as Telegram counts them.
    emoji = [f"Абзац {i}: " + "🇰🇿🚀🔥" * 400 + f" конец эмодзи-абзаца {i}." for i in range(3)]
    text = "\n".join([title, "Лид с эмодзи 🙂", "", html, *emoji, "Итог: <i>всё</i> 👍"])
    post = digest_post(5, text, title, publication="The <Diplomat> & Co 🌍", publication_country="США",
                       author="Анна «Ая» Смит")
    (back,), msgs, _ = roundtrip(tmp_path, [post])
    assert_same(post, back)
    assert len(msgs) >= 2 and any(units(m) > len(m) for m in msgs)


def test_short_posts_fields_missing_and_posts_without_publication(tmp_path):
    plain = Post(id="made/p", channel="made", text="Обычный пост без издания.\nВторая строка.")
    one = digest_post(6, "Заголовок без автора\n\nКороткий текст статьи.", "Заголовок без автора", author="")
    undated = digest_post(7, "Без даты\nЛид первой строкой\nЕщё строка лида\n\nТекст.", "Без даты", date=None,
                          publication_country="")
    back, msgs, counts = roundtrip(tmp_path, [one, plain, undated])
    assert counts == {"written": 2, "skipped": 1, "messages": 2}
    assert all(DOWN not in m and UP not in m and FINAL not in m for m in msgs)  # one message each: no markers
    assert msgs[0].split("\n")[:5] == ["Издание: Степной обозреватель (Казахстан)", "", "Заголовок без автора", "",
                                       "Дата: 07.03.2025 г."]
    assert msgs[1].split("\n")[0] == "Издание: Степной обозреватель"
    assert len(back) == 2
    assert_same(one, back[0])
    assert_same(undated, back[1])


def test_many_posts_in_one_file_keep_their_boundaries(tmp_path):
    posts = [digest_post(100 + i, "\n".join([f"Заголовок {i}", ""] + [paragraph(i * 7 + k, 3) for k in range(i * 3 + 1)]),
                         f"Заголовок {i}", author="" if i % 2 else "Автор Номер", date=datetime(2024, 1 + i, 2, tzinfo=timezone.utc))
             for i in range(10)]
    back, msgs, counts = roundtrip(tmp_path, posts)
    assert counts["written"] == 10 and len(back) == 10
    for a, b in zip(posts, back):
        assert_same(a, b)
