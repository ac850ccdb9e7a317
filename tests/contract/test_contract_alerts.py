"""Alerts (saved searches that fire once per story) through the Backend's AlertsAPI
(alerts/backend_api.py: alert_store, alert_mark, changed_since, matching_ids, story_placements,
wait_alerts_ready), `run_alerts` and the `tgsearch alerts` commands, on every backend."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from contract_data import ingest_posts
from tgsearch.alerts.check import run_alerts

FLOOD = ("В Семее после ливня затопило подземный переход на улице Шакарима: движение транспорта перекрыто, "
         "коммунальщики откачивают воду насосами, сообщили в акимате города.")
TELLINGS = [
    {"id": 11, "channel": "semey_live", "date": "2026-05-04T06:00:00Z", "text": FLOOD},
    {"id": 301, "channel": "abai_region", "date": "2026-05-04T06:20:00Z",
     "text": "⚡️ " + FLOOD + "\n\nПодписывайтесь на наш канал @abai_region"},
    {"id": 72, "channel": "irtysh_news", "date": "2026-05-04T06:40:00Z",
     "text": FLOOD.replace("сообщили", "рассказали") + " 🌧"},
    {"id": 5, "channel": "vostok_today", "date": "2026-05-04T07:10:00Z",
     "text": "‼️ " + FLOOD + "\n\nИсточник: акимат"},
]
OTHER = {"id": 12, "channel": "semey_live", "date": "2026-05-04T09:00:00Z",
         "text": "В Семее открыли новый стадион на 8 тысяч зрителей, первый матч сыграют в субботу."}
LATER = [
    {"id": 900, "channel": "kz_digest", "date": "2026-05-04T11:00:00Z", "text": FLOOD + "\n\nИсточник: @semey_live"},
    {"id": 44, "channel": "east_kz", "date": "2026-05-04T12:30:00Z", "text": "🔴 " + FLOOD},
]
NEW_STORY = {"id": 15, "channel": "semey_live", "date": "2026-06-10T08:00:00Z",
             "text": ("Через месяц после потопа в Семее переход на улице Шакарима закрыли на ремонт: подрядчик "
                      "обещает поставить новые ливнёвки к августу, работы оценили в 900 млн тенге.")}
SEED = {"id": 1, "channel": "semey_live", "date": "2026-05-01T08:00:00Z",
        "text": "В Семее прошёл городской субботник, жители высадили две тысячи деревьев."}
FIRST_ID = "semey_live/11"
TELLING_IDS = {f"{p['channel']}/{p['id']}" for p in TELLINGS}


def save(backend, name, query, **kw) -> dict:
    store = backend.alert_store()
    try:
        return store.add(name, query, mark=backend.alert_mark(), **kw)
    finally:
        store.close()


def saved(backend, name) -> dict:
    store = backend.alert_store()
    try:
        return store.get(name)
    finally:
        store.close()


def part(report, name) -> dict:
    return next(s for s in report["searches"] if s["name"] == name)


def put(backend, tmp_path, name, posts) -> None:
    ingest_posts(backend, tmp_path / "in" / f"{name}.jsonl", posts)


@pytest.mark.stories
def test_four_tellings_alert_once_later_copies_never_a_new_story_once(backend, tmp_path):
    put(backend, tmp_path, "seed", [SEED])
    save(backend, "flood", "затопило переход")
    save(backend, "stadium", "стадион", channels=["semey_live"])
    save(backend, "elsewhere", "переход", channels=["nowhere"])
    assert part(run_alerts(backend), "flood")["new_posts"] == 0

    put(backend, tmp_path, "first", TELLINGS + [OTHER])
    report = run_alerts(backend)
    flood = part(report, "flood")
    assert flood["matched"] == 4 and flood["waiting"] == 0 and len(flood["alerts"]) == 1
    story = flood["alerts"][0]["story"]
    assert story["first_post"] == FIRST_ID and story["size"] == 4 and story["channels"] == 4
    assert {p["id"] for p in story["posts"]} == TELLING_IDS
    assert flood["alerts"][0]["matched_post"] == FIRST_ID and story["id"] is not None
    assert [a["matched_post"] for a in part(report, "stadium")["alerts"]] == ["semey_live/12"]
    assert part(report, "elsewhere")["alerts"] == [] and part(report, "elsewhere")["matched"] == 0

    again = part(run_alerts(backend), "flood")           # nothing new: nothing fires
    assert again["alerts"] == [] and again["new_posts"] == 0

    put(backend, tmp_path, "later", LATER)
    later = part(run_alerts(backend), "flood")
    assert later["matched"] == 2 and later["alerts"] == [] and later["already_alerted"] == 1

    put(backend, tmp_path, "new", [NEW_STORY])
    fresh = part(run_alerts(backend), "flood")
    assert len(fresh["alerts"]) == 1
    assert fresh["alerts"][0]["story"]["first_post"] == "semey_live/15"
    assert fresh["alerts"][0]["story"]["id"] != story["id"]

    store = backend.alert_store()
    try:
        rows = store.alerts(store.get("flood")["id"])
        assert [r["first_post"] for r in rows] == ["semey_live/15", FIRST_ID]      # newest first
        assert {s["name"]: s["alerts"] for s in store.searches()} == {"elsewhere": 0, "flood": 2, "stadium": 1}
    finally:
        store.close()


@pytest.mark.stories
def test_the_mark_never_passes_posts_not_placed_in_a_story_yet(backend, tmp_path, monkeypatch):
    put(backend, tmp_path, "seed", [SEED])
    save(backend, "flood", "затопило переход")
    mark = saved(backend, "flood")["mark"]
    # the stories fall behind (another process holds the placing, as a background catch-up would)
    monkeypatch.setattr(backend.stories, "catch_up", lambda **kw: None)
    put(backend, tmp_path, "first", TELLINGS)

    new_mark, changed = backend.changed_since(mark)
    assert {p.id for p, _ in changed} == TELLING_IDS and not any(ready for _, ready in changed)
    assert {p.id for p, _ in backend.changed_since(new_mark)[1]} == TELLING_IDS     # not passed
    assert backend.matching_ids("затопило переход", (), sorted(TELLING_IDS)) == TELLING_IDS

    report = run_alerts(backend)
    flood = part(report, "flood")
    assert flood["alerts"] == [] and flood["waiting"] == len(TELLINGS) and report["notices"]
    assert {p.id for p, _ in backend.changed_since(saved(backend, "flood")["mark"])[1]} == TELLING_IDS

    monkeypatch.undo()                                   # the stories catch up
    assert backend.wait_alerts_ready(timeout=120)
    new_mark, changed = backend.changed_since(saved(backend, "flood")["mark"])
    assert {p.id for p, _ in changed} == TELLING_IDS and all(ready for _, ready in changed)
    assert backend.story_placements([FIRST_ID])[FIRST_ID]["story"] is not None
    fired = part(run_alerts(backend), "flood")["alerts"]
    assert len(fired) == 1 and fired[0]["story"]["size"] == 4
    assert part(run_alerts(backend), "flood")["alerts"] == []
    assert backend.changed_since(saved(backend, "flood")["mark"])[1] == []


@pytest.mark.stories
def test_alerts_run_twice_finds_nothing_new_the_second_time(backend, tmp_path, request):
    db = str(tmp_path / "db") if request.node.callspec.params["backend"] == "embedded" \
        else request.getfixturevalue("pg_url")
    from tgsearch.cli import main

    runner = CliRunner()
    put(backend, tmp_path, "seed", [SEED])
    r = runner.invoke(main, ["alerts", "add", "flood", "затопило переход", "--db", db])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["alerts", "add", "flood", "переход", "--db", db])
    assert r.exit_code == 1 and "exists already" in r.output
    assert "flood: затопило переход" in runner.invoke(main, ["alerts", "list", "--db", db]).output
    put(backend, tmp_path, "first", TELLINGS + [OTHER])

    r = runner.invoke(main, ["alerts", "run", "--json", "--db", db])
    assert r.exit_code == 0, r.output
    first = part(json.loads(r.output), "flood")
    assert len(first["alerts"]) == 1 and first["alerts"][0]["story"]["size"] == 4 and first["waiting"] == 0
    r = runner.invoke(main, ["alerts", "run", "--json", "--db", db])
    assert r.exit_code == 0, r.output
    second = part(json.loads(r.output), "flood")
    assert second["alerts"] == [] and second["new_posts"] == 0 and second["matched"] == 0
    r = runner.invoke(main, ["alerts", "run", "--db", db])
    assert r.exit_code == 0 and "0 new stories" in r.output

    assert runner.invoke(main, ["alerts", "remove", "flood", "--db", db]).exit_code == 0
    assert runner.invoke(main, ["alerts", "remove", "flood", "--db", db]).exit_code == 1
    assert "flood:" not in runner.invoke(main, ["alerts", "list", "--db", db]).output


def test_nothing_saved_makes_nothing_and_reports_nothing(backend, tmp_path):
    put(backend, tmp_path, "seed", [SEED])
    assert backend.alert_store(create=False) is None
    assert run_alerts(backend)["searches"] == []
    assert backend.alert_store(create=False) is None
