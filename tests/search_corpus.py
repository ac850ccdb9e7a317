"""A small invented corpus for the search tests (every sentence here is made up)."""

from __future__ import annotations

import json
from pathlib import Path

POSTS = [
    {"id": 1, "channel": "steppe_news", "channel_title": "Степные Новости", "date": "2025-05-02T09:00:00Z",
     "text": "Президент Токаев провёл переговоры о поставках урана в Европу."},
    {"id": 2, "channel": "steppe_news", "channel_title": "Степные Новости", "date": "2025-05-03T10:00:00Z",
     "text": "Министр энергетики рассказал о новых урановых рудниках и переговорах с партнёрами."},
    {"id": 3, "channel": "river_daily", "channel_title": "Речной Вестник", "date": "2025-05-10T12:00:00Z",
     "text": "На Красной площади прошёл парад исторической техники. Подробнее: https://example.org/parade"},
    {"id": 4, "channel": "river_daily", "channel_title": "Речной Вестник", "date": "2025-06-01T08:00:00Z",
     "text": "Красные флаги висели на площади у вокзала, парад отменили из-за дождя."},
    {"id": 5, "channel": "river_daily", "channel_title": "Речной Вестник", "date": "2025-06-15T08:00:00Z",
     "text": "Истребитель Су-57 показали на авиасалоне, рядом стоял самолёт F-16."},
    {"id": 6, "channel": "tech_hall", "channel_title": "Техзал", "date": "2025-04-20T08:00:00Z",
     "text": "Космонавты вернулись на Землю, а космодром готовит новый запуск к космосу."},
    {"id": 7, "channel": "tech_hall", "channel_title": "Техзал", "date": "2025-04-21T08:00:00Z",
     "text": "Нейросети пишут код <script>alert('x')</script> и <img src=x onerror=alert(1)> без ошибок нейросеть."},
    {"id": 8, "channel": "tech_hall", "channel_title": "Техзал", "date": "2025-03-01T08:00:00Z", "kind": "article",
     "title": "Газ и нефть", "source_url": "https://example.org/gas",
     "text": "Цены на нефть выросли, а газ подешевел в Москве и в Астане."},
    {"id": 9, "channel": "tech_hall", "channel_title": "Техзал", "date": "2025-03-02T08:00:00Z",
     "text": "Нефть снова в центре внимания рынков."},
]


def write_corpus(folder: Path, posts: list[dict] = POSTS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "posts.jsonl"
    with path.open("w", encoding="utf-8") as f:
        for post in posts:
            f.write(json.dumps(post, ensure_ascii=False) + "\n")
    return path


def make_backend(tmp_path: Path, posts: list[dict] = POSTS):
    from tgsearch.backend import EmbeddedBackend

    backend = EmbeddedBackend(tmp_path / "db")
    report = backend.ingest([write_corpus(tmp_path / "in", posts)])
    assert not report.errors, report.errors
    return backend
