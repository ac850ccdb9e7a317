"""An invented corpus for paging and export: many posts about grain in varied words and forms, a few
close in meaning without the word, a few unrelated; dates an hour apart (no ties)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

SUBJECTS = ["Казахстан", "Россия", "Узбекистан", "Турция", "Египет"]
ACTIONS = ["увеличил закупки", "ограничил вывоз", "обсудил цены на", "подписал контракт на поставки", "проверил запасы"]
START = datetime(2025, 1, 6, 8, tzinfo=timezone.utc)


def corpus() -> list[dict]:
    posts = []
    for i in range(60):
        noun = ["зерна", "зерно", "зерном", "зерна и муки"][i % 4]
        posts.append({"id": i + 1, "channel": ["grain_desk", "market_eye", "field_notes"][i % 3],
                      "date": (START + timedelta(hours=13 * i)).isoformat(),
                      "text": f"{SUBJECTS[i % 5]} {ACTIONS[(i // 5) % 5]} {noun}. Заметка номер {i + 1} о рынке."})
    for j, text in enumerate(["Пшеница нового урожая подорожала на бирже в Чикаго.",
                              "Элеваторы на севере заполнены, фермеры ищут склады для урожая.",
                              "Экспорт ячменя и ржи вырос на треть за сезон."]):
        posts.append({"id": 200 + j, "channel": "market_eye", "date": (START + timedelta(days=40, hours=j)).isoformat(),
                      "text": text})
    for k in range(6):
        posts.append({"id": 300 + k, "channel": "city_life", "date": (START + timedelta(days=k, minutes=30)).isoformat(),
                      "text": f"В сквере установили новую скамейку номер {k}, сообщили в акимате."})
    return posts
