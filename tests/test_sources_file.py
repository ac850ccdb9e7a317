"""The sources file (<db>/sources.toml): CLI round trip, the file's content, duplicates, bad files,
and the Sources page / API showing each source's recorded run and crawl cursor."""

from __future__ import annotations

import json
import tomllib

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from tgsearch.backend import EmbeddedBackend
from tgsearch.cli import main
from tgsearch.collect import sources as sources_file
from tgsearch.errors import SourcesFileError, TgsearchError


def run(*args):
    # A wide console, so rich tables do not fold cells (the CLI's console may have been created
    # with another width, e.g. under pytest-xdist).
    from rich.console import Console

    from tgsearch import cli, cli_collect

    saved = cli.out, cli_collect.out
    cli.out = cli_collect.out = Console(width=250)
    try:
        return CliRunner(env={"COLUMNS": "250"}).invoke(main, list(args), catch_exceptions=False)
    finally:
        cli.out, cli_collect.out = saved


def listed(db) -> list[dict]:
    r = run("sources", "list", "--db", str(db), "--json")
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_cli_add_list_remove_round_trip(tmp_path):
    db = tmp_path / "data"
    assert run("sources", "add", "crawl", "https://t.me/s/RiverDaily", "--db", str(db), "--interval", "600",
               "--base-url", "http://127.0.0.1:8080").exit_code == 0
    assert run("sources", "add", "sync", "@SteppeNews", "--db", str(db)).exit_code == 0
    assert run("sources", "add", "articles", "--db", str(db), "--allow-host", "intranet.example:8080",
               "--allow-host", "wiki.local").exit_code == 0
    rows = listed(db)
    assert [(r["kind"], r["channel"], r["interval"]) for r in rows] == [
        ("crawl", "riverdaily", 600), ("sync", "steppenews", 300), ("articles", "", 1800)]
    assert rows[0]["base_url"] == "http://127.0.0.1:8080" and rows[2]["allow_hosts"] == ["intranet.example:8080", "wiki.local"]
    assert all(r["last_run"] is None and r["next_run"] is None for r in rows)   # no store yet: never run

    table = run("sources", "list", "--db", str(db))
    assert table.exit_code == 0 and "crawl:riverdaily" in table.stdout and "sync:steppenews" in table.stdout

    r = run("sources", "remove", "sync", "SteppeNews", "--db", str(db))
    assert r.exit_code == 0 and "removed sync:steppenews" in r.stderr
    r = run("sources", "remove", "articles", "--db", str(db))
    assert r.exit_code == 0
    assert [r["key"] for r in listed(db)] == ["crawl:riverdaily"]

    r = run("sources", "remove", "sync", "steppenews", "--db", str(db))       # already gone
    assert r.exit_code != 0 and "no sync:steppenews source" in r.stderr and "Traceback" not in r.output
    r = run("sources", "remove", "crawl", "--db", str(db))                    # crawl needs a channel
    assert r.exit_code != 0 and "needs a channel" in r.stderr


def test_file_content_parses_back_and_is_escaped(tmp_path):
    hostile = 'http://example.org/a"b\\c\n\t\x7fd ] # [[source]] é'
    sources_file.save(tmp_path, [
        sources_file.Source("crawl", "riverdaily", 900, "http://x.example"),
        sources_file.Source("articles", "", 60, "", (hostile, "wiki.local")),
    ])
    data = tomllib.loads((tmp_path / "sources.toml").read_text(encoding="utf-8"))
    assert data == {"source": [
        {"kind": "crawl", "channel": "riverdaily", "interval": 900, "base_url": "http://x.example"},
        {"kind": "articles", "interval": 60, "allow_hosts": [hostile, "wiki.local"]},
    ]}
    loaded = sources_file.load(tmp_path)
    assert loaded[1].allow_hosts == (hostile.strip(), "wiki.local") and loaded[0].key == "crawl:riverdaily"
    assert not [p for p in tmp_path.iterdir() if p.name != "sources.toml"]   # no temporary file left


def test_adding_a_duplicate_updates_it(tmp_path):
    db = tmp_path / "data"
    assert run("sources", "add", "crawl", "RiverDaily", "--db", str(db)).exit_code == 0
    r = run("sources", "add", "crawl", "https://t.me/riverdaily", "--db", str(db), "--interval", "120")
    assert r.exit_code == 0 and "updated crawl:riverdaily" in r.stderr
    assert run("sources", "add", "sync", "riverdaily", "--db", str(db)).exit_code == 0   # another kind: a new source
    rows = listed(db)
    assert [(r["key"], r["interval"]) for r in rows] == [("crawl:riverdaily", 120), ("sync:riverdaily", 300)]
    assert len(tomllib.loads((db / "sources.toml").read_text())["source"]) == 2


@pytest.mark.parametrize("content, expected", [
    ('[[source]\nkind = "crawl"\n', "not valid TOML"),
    ('[[source]]\nkind = "mirror"\nchannel = "x"\n', "[[source]] #1: kind must be one of crawl, sync, articles"),
    ('[[source]]\nkind = "sync"\nchannel = "abcd"\n[[source]]\nkind = "crawl"\n', "[[source]] #2: a crawl source needs a channel"),
    ('[[source]]\nkind = "crawl"\nchannel = "abcd"\ninterval = "soon"\n', "interval must be a whole number"),
    ('[[source]]\nkind = "crawl"\nchannel = "abcd"\nallow_hosts = ["x"]\n', "unknown field 'allow_hosts' for a crawl source"),
    ('[[source]]\nkind = "articles"\nallow_hosts = "x"\n', "allow_hosts must be a list"),
    ('source = 3\n', "'source' must be [[source]] tables"),
    ('[[source]]\nkind = "sync"\nchannel = 5\n', "channel must be a name in quotes"),
])
def test_a_malformed_file_is_one_readable_line(tmp_path, content, expected):
    db = tmp_path / "data"
    db.mkdir()
    (db / "sources.toml").write_text(content, encoding="utf-8")
    with pytest.raises(SourcesFileError) as e:
        sources_file.load(db)
    assert isinstance(e.value, TgsearchError) and expected in e.value.message
    assert str(db / "sources.toml") in e.value.message and "\n" not in e.value.message
    for args in (("sources", "list"), ("sources", "add", "sync", "abcd")):
        r = run(*args, "--db", str(db))
        assert r.exit_code != 0 and "Traceback" not in r.output
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and expected in lines[0], r.stderr
    assert (db / "sources.toml").read_text(encoding="utf-8") == content        # a bad file is never overwritten


HOSTILE = '<script>alert("x")</script> & [red]markup[/red]'


@pytest.fixture
def backend_with_runs(tmp_path):
    b = EmbeddedBackend(tmp_path / "data", vectors="off")
    sources_file.add(b.root, sources_file.make("crawl", "RiverDaily", interval=600))
    sources_file.add(b.root, sources_file.make("articles"))
    b.store.set_cursor("riverdaily", newest=4321, oldest=17, complete=True)
    b.store.record_source_run("crawl:riverdaily", "2026-05-01T10:00:00Z", "2026-05-01T10:00:30Z", 42, HOSTILE)
    yield b
    b.close()


def test_a_recorded_run_and_cursor_show_in_the_api_page_and_cli(backend_with_runs):
    from tgsearch.api.app import create_app

    b = backend_with_runs
    with TestClient(create_app(b)) as c:
        rows = c.get("/api/sources").json()
        assert [r["key"] for r in rows] == ["crawl:riverdaily", "articles"]
        crawl, articles = rows
        assert crawl["posts"] == 42 and crawl["error"] == HOSTILE and crawl["last_run"] == "2026-05-01T10:00:30Z"
        assert crawl["next_run"] == "2026-05-01T10:10:00Z"                  # started + 600 s
        assert crawl["cursor"] == {"newest": 4321, "oldest": 17, "complete": True}
        assert articles["last_run"] is None and articles["next_run"] is None and articles["cursor"] is None

        page = c.get("/sources")
        assert page.status_code == 200
        html = page.text
        assert "riverdaily" in html and "4321" in html and "history complete" in html and "2026-05-01 10:00" in html
        assert "<script>alert" not in html and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp;" in html
        assert 'href="/sources" aria-current="page"' in html and 'href="/sources"' in c.get("/channels").text

    r = run("sources", "list", "--db", str(b.root), "--json")
    assert r.exit_code == 0 and json.loads(r.stdout)[0]["error"] == HOSTILE
    r = run("sources", "list", "--db", str(b.root))
    assert r.exit_code == 0 and "[red]markup" in r.stdout                   # shown as text, not rich markup


def test_sources_behind_the_token_and_a_backend_without_sources(backend_with_runs):
    from tgsearch.api.app import create_app

    with TestClient(create_app(backend_with_runs, token="s3cret-token-value")) as c:
        assert c.get("/api/sources").status_code == 401
        assert c.get("/sources", follow_redirects=False).status_code in (302, 303, 307, 401)
        r = c.get("/api/sources", headers={"authorization": "Bearer s3cret-token-value"})
        assert r.status_code == 200 and len(r.json()) == 2

    class NoSources:
        def __init__(self, inner):
            self._inner = inner

        def __getattr__(self, name):
            if name == "sources":
                raise AttributeError(name)
            return getattr(self._inner, name)

    with TestClient(create_app(NoSources(backend_with_runs))) as c:
        assert c.get("/api/sources").json() == []
        page = c.get("/sources")
        assert page.status_code == 200 and "No sources yet" in page.text


def test_a_malformed_file_on_the_page_and_api(backend_with_runs):
    from tgsearch.api.app import create_app

    (backend_with_runs.root / "sources.toml").write_text('[[source]]\nkind = "<b>x</b>"\n', encoding="utf-8")
    with TestClient(create_app(backend_with_runs)) as c:
        r = c.get("/api/sources")
        assert r.status_code == 422 and "kind must be one of" in r.json()["message"]
        page = c.get("/sources")
        assert page.status_code == 422 and "kind must be one of" in page.text and "<b>x</b>" not in page.text
