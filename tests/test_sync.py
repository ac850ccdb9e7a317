"""`tgsearch sync` / `tgsearch login`: the Telegram API collector, against an in-memory TelegramClient
(tests/telegram_standin.py) that answers Telethon's own requests; nothing touches the network."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from datetime import timedelta

import pytest
from click.testing import CliRunner
from telethon import events, helpers
from telethon.tl import functions, types

from tgsearch.backend import open_backend
from tgsearch.cli import main
from tgsearch.collect import telegram
from tgsearch.collect.telegram import SyncConfig, sync
from tgsearch.collect.tg_live import attach_live, on_message_deleted, on_message_edited, on_new_message
from tgsearch.errors import SyncError
from tgsearch.search.types import SearchRequest
from telegram_standin import BASE, Killed, Standin

History = functions.messages.GetHistoryRequest
ById = functions.channels.GetMessagesRequest


@pytest.fixture
def backend(tmp_path):
    b = open_backend(tmp_path / "db")
    yield b
    b.close()


def stored(backend, channel: str) -> dict:
    posts = [p for p in backend.store.iter_posts(deleted=True) if p.channel == channel]
    ids = [p.id for p in posts]
    assert len(ids) == len(set(ids))
    return {p.id: p for p in posts}


def stored_messages(backend, channel: str) -> list[int]:
    mids = [m for p in stored(backend, channel).values() for m in p.message_ids]
    assert len(mids) == len(set(mids)), "a message stored twice"
    return sorted(mids)


def found(backend, q: str, channel: str) -> list[str]:
    return [h.id for h in backend.search(SearchRequest(q=q, channels=(channel,), mode="lexical", limit=50)).hits]


def test_first_sync_brings_the_whole_history_in_batches(backend):
    client = Standin()
    client.add_channel("RiverDaily", 450)
    batches = []
    [report] = sync(backend, ["@RiverDaily"], SyncConfig(), client=client, on_batch=lambda r: batches.append(r.last_id))
    assert not report.error and report.complete and report.new == 450 and report.messages == 450
    assert batches == [100, 200, 300, 400, 450]                       # the cursor after each stored batch
    assert stored_messages(backend, "riverdaily") == list(range(1, 451))
    assert client.count(History) == 6 and client.count(functions.contacts.ResolveUsernameRequest) == 1
    assert client.flood_sleep_threshold == 0                          # flood waits come to the collector
    cursor = backend.store.get_sync_cursor("riverdaily")
    assert cursor["last_id"] == 450 and cursor["complete"] and cursor["peer_id"] == -1000000001001
    post = backend.get("riverdaily/7")
    assert post.channel_title == "Канал RiverDaily" and post.views == 107 and post.date == BASE + timedelta(minutes=7)
    assert post.url == "https://t.me/riverdaily/7"
    assert found(backend, "театр", "riverdaily")                      # the index caught up


def test_second_sync_brings_new_messages_edits_counters_and_deletions_with_few_requests(backend):
    client = Standin()
    chan = client.add_channel("riverdaily", 450)
    sync(backend, ["riverdaily"], client=client)
    versions = backend.store.ids_and_versions()
    client.requests.clear()
    chan.add_many(7)
    chan.edit(440, "Исправлено: колокольня на площади закрыта на ремонт.")
    chan.messages[445].views = 5000
    del chan.messages[430]
    [report] = sync(backend, ["riverdaily"], SyncConfig(recheck=100), client=client)
    assert not report.error, report.error
    assert (report.new, report.updated, report.deleted) == (7, 1, 1)
    assert report.refreshed >= 1 and report.rechecked == 100
    # the peer recorded in the cursor spares a username lookup; 7 new messages: one page (and the empty one)
    assert client.count(functions.contacts.ResolveUsernameRequest) == 0
    assert client.count(History) == 2 and client.count(ById) == 1 and len(client.requests) == 4
    assert stored_messages(backend, "riverdaily") == list(range(1, 458))
    edited = backend.get("riverdaily/440")
    assert edited.text.startswith("Исправлено") and edited.edited and edited.edit_date is not None
    assert found(backend, "колокольня", "riverdaily") == ["riverdaily/440"]
    assert backend.get("riverdaily/445").views == 5000
    assert backend.store.ids_and_versions()["riverdaily/445"] == versions["riverdaily/445"]   # not re-indexed
    assert backend.get("riverdaily/430").deleted
    assert "riverdaily/430" not in found(backend, "новость", "riverdaily") + found(backend, "430", "riverdaily")
    assert found(backend, "457", "riverdaily") == ["riverdaily/457"]


def test_a_killed_sync_resumes_without_loss_or_duplicates(backend):
    client = Standin()
    chan = client.add_channel("riverdaily", 95)
    for i in range(5):   # an album across the first batch's end (ids 96-100) ...
        chan.add("Фотографии с паводка" if i == 0 else "", grouped_id=555, media=types.MessageMediaPhoto())
    chan.add_many(250)
    client.crash_after = 2
    with pytest.raises(Killed):
        sync(backend, ["riverdaily"], SyncConfig(recheck=0), client=client)
    cursor = backend.store.get_sync_cursor("riverdaily")
    mids = stored_messages(backend, "riverdaily")
    assert mids == list(range(1, cursor["last_id"] + 1))            # the cursor never passes what is stored
    assert cursor["last_id"] == 195 and not cursor["complete"]       # ... went whole into the second batch
    album = backend.get("riverdaily/96")
    assert album.message_ids == (96, 97, 98, 99, 100) and album.text == "Фотографии с паводка"
    client.crash_after = None
    client.history_offsets.clear()
    [report] = sync(backend, ["riverdaily"], SyncConfig(recheck=0), client=client)
    assert not report.error and report.complete
    assert client.history_offsets[0] == 196                         # resumed just after the cursor
    assert report.new == 350 - 195 and report.unchanged == 0
    assert stored_messages(backend, "riverdaily") == list(range(1, 351))
    assert len(stored(backend, "riverdaily")) == 350 - 4


def test_message_fields_albums_forwards_replies_topics_reactions_previews_links(backend):
    client = Standin()
    origin = client.add_channel("SteppeWire", 0, title="Степной провод")
    group = client.add_channel("townhall", 0, title="Городской форум", megagroup=True)
    group.add("Тема: дороги", id=10)
    text = "Читайте подробности на сайте и в отчёте 👉 example.org/report"
    group.add(text, id=11, reply_to=types.MessageReplyHeader(forum_topic=True, reply_to_msg_id=10),
              fwd_from=types.MessageFwdHeader(date=BASE - timedelta(days=2), from_id=origin.peer, channel_post=5),
              entities=[types.MessageEntityTextUrl(offset=22, length=5, url="https://news.example/full"),
                        types.MessageEntityUrl(offset=len(helpers.add_surrogate(text)) - 18, length=18)],
              reactions=types.MessageReactions(results=[
                  types.ReactionCount(reaction=types.ReactionEmoji(emoticon="👍"), count=12),
                  types.ReactionCount(reaction=types.ReactionPaid(), count=3)]),
              media=types.MessageMediaWebPage(webpage=types.WebPage(
                  id=1, url="https://news.example/full", display_url="news.example/full", hash=0,
                  site_name="Новости", title="Ремонт дорог", description="План на лето")),
              post_author="Редакция")
    group.add("Согласен", id=12, reply_to=types.MessageReplyHeader(forum_topic=True, reply_to_msg_id=11,
                                                                  reply_to_top_id=10))
    photo = types.MessageMediaPhoto(photo=types.PhotoEmpty(id=1))
    video = types.MessageMediaDocument(document=types.Document(
        id=2, access_hash=0, file_reference=b"", date=BASE, mime_type="video/mp4", size=1, dc_id=1,
        attributes=[types.DocumentAttributeVideo(duration=3, w=1, h=1)]))
    doc = types.MessageMediaDocument(document=types.Document(
        id=3, access_hash=0, file_reference=b"", date=BASE, mime_type="application/pdf", size=1, dc_id=1,
        attributes=[types.DocumentAttributeFilename(file_name="plan.pdf")]))
    group.add("", id=13, grouped_id=9, media=photo, views=40)
    group.add("Фото и видео с объезда", id=14, grouped_id=9, media=video, views=41)
    group.add("", id=15, grouped_id=9, media=doc, views=39)
    poll = types.MessageMediaPoll(poll=types.Poll(id=1, question=types.TextWithEntities("Где чинить?", []), hash=0,
                                                  answers=[types.PollAnswer(types.TextWithEntities("Центр", []), b"1"),
                                                           types.PollAnswer(types.TextWithEntities("Окраины", []), b"2")]),
                                  results=types.PollResults())
    group.add("", id=16, media=poll)
    group.messages[17] = types.MessageService(id=17, peer_id=group.peer, date=BASE, action=types.MessageActionPinMessage())
    [report] = sync(backend, ["townhall"], client=client)
    assert not report.error and report.messages == 8 and report.new == 5
    post = backend.get("townhall/11")
    assert post.forwarded_from == "steppewire" and post.forward_date == BASE - timedelta(days=2)
    assert post.topic_id == 10 and post.reply_to is None and post.author == "Редакция"
    assert post.reactions == {"👍": 12, "⭐": 3} and "webpage" in post.media
    assert (post.preview_site, post.preview_title, post.preview_description, post.preview_url) == (
        "Новости", "Ремонт дорог", "План на лето", "https://news.example/full")
    assert post.links == ("https://news.example/full", "https://example.org/report")
    reply = backend.get("townhall/12")
    assert reply.reply_to == 11 and reply.topic_id == 10
    album = backend.get("townhall/13")
    assert album.message_ids == (13, 14, 15) and album.text == "Фото и видео с объезда"
    assert album.media == ("photo", "video", "file") and album.views == 41
    assert "townhall/14" not in stored(backend, "townhall")
    assert backend.get("townhall/16").text == "Где чинить?\n- Центр\n- Окраины"
    assert backend.store.get_sync_cursor("townhall")["last_id"] == 17
    assert found(backend, "объезда", "townhall") == ["townhall/13"]
    # the new fields are exported like the others
    assert backend.get("townhall/11").to_dict()["forward_date"] == "2025-02-27T08:00:00Z"


def test_flood_waits_short_ones_waited_a_long_one_stops_only_its_channel(backend):
    client = Standin()
    client.add_channel("riverdaily", 250)
    client.add_channel("hillnews", 120)
    client.floods.append({"channel": "riverdaily", "nth": 2, "seconds": 7, "times": 2})
    client.floods.append({"channel": "hillnews", "nth": 2, "seconds": 3600, "times": 1})
    slept = []

    async def fake_sleep(seconds):
        slept.append(seconds)

    reports = sync(backend, ["riverdaily", "hillnews"], SyncConfig(sleep=fake_sleep), client=client)
    river, hill = reports
    assert slept == [7, 7] and river.flood_waited == 14
    assert not river.error and river.complete and len(stored(backend, "riverdaily")) == 250
    assert "hillnews: Telegram asks to wait 3600 s" in hill.error and "--max-flood-wait 60" in hill.error
    assert "\n" not in hill.error and not hill.complete
    assert backend.store.get_sync_cursor("hillnews")["last_id"] == 100 == len(stored(backend, "hillnews"))


def test_sync_source_for_watch_stops_when_asked_and_reports_a_run_that_cannot_start(backend):
    import threading

    from tgsearch.collect.sources import make

    client = Standin()
    client.add_channel("riverdaily", 250)
    stop = threading.Event()
    source = make("sync", "riverdaily")
    seen = []

    def on_batch(r):
        seen.append(r.last_id)
        stop.set()                                   # watch shutting down after the first batch

    [report] = sync(backend, ["riverdaily"], SyncConfig(), client=client, on_batch=on_batch, stop=stop)
    assert seen == [100] and not report.error and not report.complete
    assert backend.store.get_sync_cursor("riverdaily")["last_id"] == 100
    [report] = telegram.sync_source(backend, source, client=client, recheck=10)
    assert report.new == 150 and report.complete
    client.authorised = False
    [report] = telegram.sync_source(backend, source, client=client)
    assert report.error.startswith("not logged in to Telegram")


def test_unknown_and_private_channels_are_one_line_each(backend):
    client = Standin()
    client.add_channel("riverdaily", 5)
    reports = sync(backend, ["nosuchchannel", "not a name!", "riverdaily"], client=client)
    assert reports[0].error == "nosuchchannel: no such channel or group on Telegram; check the name"
    assert "not a channel" in reports[1].error
    assert not reports[2].error and reports[2].new == 5


def test_takeout_session_is_opened_and_finished(backend):
    client = Standin()
    client.add_channel("riverdaily", 30)
    [report] = sync(backend, ["riverdaily"], SyncConfig(takeout=True), client=client)
    assert not report.error and report.new == 30 and client.takeouts == 1
    assert client.count(functions.account.FinishTakeoutSessionRequest) == 1
    assert client.requests[-1].success is True


@pytest.fixture
def cli_client(monkeypatch):
    client = Standin()
    monkeypatch.setattr(telegram, "client_factory", lambda db: client)
    return client


def test_cli_sync_reports_each_channel_and_exits_2_when_one_failed(cli_client, tmp_path):
    cli_client.add_channel("riverdaily", 120)
    cli_client.add_channel("hillnews", 30)
    cli_client.floods.append({"channel": "hillnews", "nth": 1, "seconds": 900, "times": 5})
    db = str(tmp_path / "db")
    result = CliRunner().invoke(main, ["sync", "riverdaily", "hillnews", "--db", db, "--max-flood-wait", "30"])
    assert result.exit_code == 2, result.output
    errors_ = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert errors_ == ["error: hillnews: Telegram asks to wait 900 s before reading the history (flood wait longer "
                       "than --max-flood-wait 30); stopped this channel, run again later"]
    assert "riverdaily: messages 120  new 120  updated 0  refreshed 0  deleted 0  (history complete)" in result.output
    assert "hillnews: messages 0" in result.output and "(failed)" in result.output
    result = CliRunner().invoke(main, ["sync", "riverdaily", "--db", db, "--json", "--limit", "5"])
    assert result.exit_code == 0, result.output
    [report] = json.loads(result.output)
    assert report["channel"] == "riverdaily" and report["complete"] and report["rechecked"] == 100


def test_cli_sync_without_login_is_one_error_line(cli_client, tmp_path):
    cli_client.authorised = False
    cli_client.add_channel("riverdaily", 3)
    db = tmp_path / "db"
    result = CliRunner().invoke(main, ["sync", "riverdaily", "--db", str(db)])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        f"error: not logged in to Telegram (no authorised session in {db}); run `tgsearch login --db {db}` first"]
    assert cli_client.requests == []


def test_cli_sync_takes_the_sync_sources_and_sources_list_shows_the_cursor(cli_client, tmp_path):
    cli_client.add_channel("riverdaily", 12)
    cli_client.add_channel("hillnews", 4)
    db = str(tmp_path / "db")
    runner = CliRunner()
    assert runner.invoke(main, ["sources", "add", "sync", "RiverDaily", "--db", db]).exit_code == 0
    assert runner.invoke(main, ["sources", "add", "crawl", "hillnews", "--db", db]).exit_code == 0
    result = runner.invoke(main, ["sync", "--db", db, "-q"])
    assert result.exit_code == 0, result.output
    assert "riverdaily: messages 12" in result.output and "hillnews" not in result.output
    rows = json.loads(runner.invoke(main, ["sources", "list", "--db", db, "--json"]).output)
    sync_row = next(r for r in rows if r["kind"] == "sync")
    assert sync_row["cursor"]["newest"] == 12 and sync_row["cursor"]["complete"]
    assert runner.invoke(main, ["sources", "list", "--db", db]).exit_code == 0
    if os.name == "posix":
        assert stat.S_IMODE(os.stat(tmp_path / "db" / "store.sqlite").st_mode) & 0o077 == 0


def test_cli_login_with_a_session_already_authorised(cli_client, tmp_path):
    result = CliRunner().invoke(main, ["login", "--db", str(tmp_path / "db")])
    assert result.exit_code == 0, result.output
    assert "logged in as Tester" in result.output


def test_credentials_and_the_private_session_file(tmp_path, monkeypatch):
    db = tmp_path / "db"
    monkeypatch.delenv("TGSEARCH_API_ID", raising=False)
    monkeypatch.delenv("TGSEARCH_API_HASH", raising=False)
    with pytest.raises(SyncError, match="no Telegram API credentials.*telegram.toml"):
        telegram.load_credentials(db)
    db.mkdir()
    (db / "telegram.toml").write_text('api_id = 12345\napi_hash = "0123456789abcdef0123456789abcdef"\n')
    assert telegram.load_credentials(db) == (12345, "0123456789abcdef0123456789abcdef")
    monkeypatch.setenv("TGSEARCH_API_ID", "777")
    monkeypatch.setenv("TGSEARCH_API_HASH", "f" * 32)
    assert telegram.load_credentials(db) == (777, "f" * 32)
    monkeypatch.setenv("TGSEARCH_API_ID", "seven")
    with pytest.raises(SyncError, match="api_id must be a number"):
        telegram.load_credentials(db)
    monkeypatch.setenv("TGSEARCH_API_ID", "777")
    client = telegram.make_client(db)             # builds the session file; connects to nothing
    try:
        assert stat.S_IMODE(os.stat(db / "telegram.session").st_mode) == 0o600
    finally:
        client.session.close()


def _event(event, client, chan):
    event._entities = {chan.entity.id * -1 - 1000000000000: chan.entity}
    event._set_client(client)
    return event


def test_live_handlers_store_new_edited_and_deleted_messages(backend):
    client = Standin()
    chan = client.add_channel("riverdaily", 3)
    sync(backend, ["riverdaily"], client=client)
    handlers = attach_live(client, backend, ["riverdaily"])
    assert [type(e).__name__ for _, e in handlers] == ["NewMessage", "Album", "MessageEdited", "MessageDeleted"]
    assert len(client.list_event_handlers()) == 4
    new = chan.add("Срочно: мост через реку открыт после ремонта.")
    asyncio.run(on_new_message(backend, _event(events.NewMessage.Event(new), client, chan)))
    assert found(backend, "мост", "riverdaily") == ["riverdaily/4"]
    assert backend.get("riverdaily/4").channel_title == "Канал riverdaily"
    chan.edit(4, "Срочно: мост через реку снова закрыт.")
    asyncio.run(on_message_edited(backend, _event(events.MessageEdited.Event(chan.messages[4]), client, chan)))
    assert backend.get("riverdaily/4").text == "Срочно: мост через реку снова закрыт." and backend.get("riverdaily/4").edited
    deleted = events.MessageDeleted.Event(deleted_ids=[2, 4], peer=chan.peer)
    deleted._entities = {}
    deleted._set_client(client)
    asyncio.run(on_message_deleted(backend, deleted))
    assert backend.get("riverdaily/2").deleted and backend.get("riverdaily/4").deleted
    assert found(backend, "мост", "riverdaily") == []
    assert backend.store.get_sync_cursor("riverdaily")["last_id"] == 3      # live events never move the cursor
