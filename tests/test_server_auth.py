"""Server hardening around the token: Host check without a token (DNS rebinding), the wrong-token
throttle (bearer and login form) that never refuses the right token, and revocable sessions."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from search_corpus import write_corpus
from tgsearch.api.app import create_app
from tgsearch.web import auth

TOKEN = "s3cret-token"
LOOPBACK = "http://127.0.0.1:8000"


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    from tgsearch.backend import EmbeddedBackend

    folder = tmp_path_factory.mktemp("server_auth")
    b = EmbeddedBackend(folder / "db", vectors="off")       # lexical only: no embedding in the background
    assert not b.ingest([write_corpus(folder / "in")]).errors
    yield b
    b.close()


# -- Host check (no token) -----------------------------------------------------------------------

@pytest.mark.parametrize("host", ["localhost", "localhost:8000", "127.0.0.1:9", "127.0.0.5", "[::1]:8000", "LOCALHOST."])
def test_loopback_host_names_are_answered(backend, host):
    client = TestClient(create_app(backend, allowed_hosts=()), base_url=LOOPBACK)
    assert client.get("/api/health", headers={"Host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "localhost.evil.example",
                                  "10.0.0.8:8000", ""])
def test_other_host_names_are_refused_without_a_token(backend, host):
    client = TestClient(create_app(backend, allowed_hosts=()), base_url=LOOPBACK)
    for path in ("/api/search?q=уран", "/", "/api/stats"):
        r = client.get(path, headers={"Host": host})
        assert r.status_code == 421, (host, path, r.status_code)
        assert "host not allowed" in r.json()["message"] and "--allow-host" in r.json()["message"]
        assert r.headers["x-content-type-options"] == "nosniff"


def test_allowed_host_names_are_configurable_and_a_token_replaces_the_check(backend):
    client = TestClient(create_app(backend, allowed_hosts=["search.lan"]), base_url=LOOPBACK)
    assert client.get("/api/health", headers={"Host": "search.lan:8000"}).status_code == 200
    assert client.get("/api/health", headers={"Host": "other.lan"}).status_code == 421
    # With a token the token decides (a rebinding page does not have it).
    client = TestClient(create_app(backend, token=TOKEN, allowed_hosts=()), base_url=LOOPBACK)
    assert client.get("/api/health", headers={"Host": "search.example"}).status_code == 401
    ok = client.get("/api/health", headers={"Host": "search.example", "Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200


def test_serve_answers_only_loopback_and_allowed_hosts(backend):
    """The real `tgsearch serve` on a free loopback port."""
    import httpx

    from server_helpers import running_serve

    with running_serve(backend.root, "--allow-host", "search.lan") as base:
        assert httpx.get(base + "/api/health").status_code == 200
        assert httpx.get(base + "/api/health", headers={"Host": "search.lan"}).status_code == 200
        r = httpx.get(base + "/api/health", headers={"Host": "rebind.evil.example"})
        assert r.status_code == 421 and "host not allowed" in r.json()["message"]


# -- wrong tokens --------------------------------------------------------------------------------

def test_wrong_bearer_tokens_are_throttled_but_the_right_one_always_passes(backend):
    client = TestClient(create_app(backend, token=TOKEN))
    wrong = {"Authorization": "Bearer guess"}
    for _ in range(auth.LoginThrottle.MAX_FAILURES):
        assert client.get("/api/stats", headers=wrong).status_code == 401
    r = client.get("/api/stats", headers=wrong)
    assert r.status_code == 429 and r.json()["error"] == "throttled"
    assert int(r.headers["retry-after"]) >= 1 and r.headers["x-content-type-options"] == "nosniff"
    assert client.get("/channels", headers=wrong, follow_redirects=False).status_code == 429
    # The right token from the same address is never refused (nor does it reset the count: a busy
    # API client behind the same address must not give a guesser fresh attempts).
    for _ in range(3):
        assert client.get("/api/stats", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert client.get("/api/stats", headers=wrong).status_code == 429
    # Requests without any token are refused as before, not counted as guesses.
    for _ in range(3 * auth.LoginThrottle.MAX_FAILURES):
        assert client.get("/api/stats").status_code == 401


def test_the_throttle_is_per_address(backend):
    app = create_app(backend, token=TOKEN)
    guesser = TestClient(app, client=("203.0.113.7", 4000))
    other = TestClient(app, client=("198.51.100.2", 4000))
    for _ in range(auth.LoginThrottle.MAX_FAILURES + 1):
        last = guesser.get("/api/stats", headers={"Authorization": "Bearer guess"})
    assert last.status_code == 429
    assert other.get("/api/stats", headers={"Authorization": "Bearer guess"}).status_code == 401


def test_login_form_never_locks_out_the_right_token(backend):
    with TestClient(create_app(backend, token=TOKEN)) as c:
        for _ in range(auth.LoginThrottle.MAX_FAILURES):
            assert c.post("/login", data={"token": "guess"}, follow_redirects=False).status_code == 401
        r = c.post("/login", data={"token": "guess"}, follow_redirects=False)
        assert r.status_code == 429 and "Too many wrong tokens" in r.text and int(r.headers["retry-after"]) >= 1
        assert auth.COOKIE_NAME not in r.cookies
        r = c.post("/login", data={"token": TOKEN, "next": "/channels"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/channels" and auth.COOKIE_NAME in r.cookies


def test_throttle_bucket_refills():
    throttle = auth.LoginThrottle()
    for _ in range(throttle.MAX_FAILURES):
        assert throttle.failed("a") == 0
    assert throttle.failed("a") > 0 and throttle.blocked("a")
    bucket, at = throttle._buckets["a"]
    throttle._buckets["a"] = (bucket, at - throttle.REFILL)      # one refill period later
    assert not throttle.blocked("a") and throttle.failed("a") == 0 and throttle.failed("a") > 0


# -- sessions ------------------------------------------------------------------------------------

def login(client) -> str:
    r = client.post("/login", data={"token": TOKEN}, follow_redirects=False)
    assert r.status_code == 303
    return r.cookies[auth.COOKIE_NAME]


def test_a_cookie_captured_before_logout_stops_working(backend):
    app = create_app(backend, token=TOKEN)
    with TestClient(app) as user, TestClient(app) as thief:
        value = login(user)
        assert TOKEN not in value
        thief.cookies.set(auth.COOKIE_NAME, value)
        assert thief.get("/channels", follow_redirects=False).status_code == 200
        assert thief.get("/api/stats").status_code == 200
        user.post("/logout", follow_redirects=False)
        assert thief.get("/channels", follow_redirects=False).status_code == 303
        assert thief.get("/api/stats").status_code == 401


def test_sessions_are_random_and_end_with_the_token(backend):
    app = create_app(backend, token=TOKEN)
    with TestClient(app) as a, TestClient(app) as b:
        first, second = login(a), login(b)
        assert first != second
        b.post("/logout")
        assert a.get("/api/stats").status_code == 200          # one logout ends one session
        app.state.token = "a-new-token"                        # the operator changed the token
        assert a.get("/api/stats").status_code == 401


def test_sessions_expire_and_stay_bounded():
    sessions = auth.Sessions(max_age=-1)
    assert not sessions.valid(sessions.create(TOKEN), TOKEN)
    sessions = auth.Sessions()
    sessions.MAX = 20
    values = [sessions.create(TOKEN) for _ in range(50)]
    assert len(sessions) <= 20 and sessions.valid(values[-1], TOKEN)
    assert not sessions.valid("", TOKEN) and not sessions.valid("forged", TOKEN)


def test_serve_warns_about_a_short_token(backend, monkeypatch):
    import uvicorn
    from click.testing import CliRunner

    from tgsearch.cli import main

    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: None)
    monkeypatch.setenv("TGSEARCH_VECTORS", "off")
    short = CliRunner().invoke(main, ["serve", "--db", str(backend.root), "--token", "s3cret"])
    assert short.exit_code == 0 and "warning" in short.output and "6 characters" in short.output
    long = CliRunner().invoke(main, ["serve", "--db", str(backend.root), "--token", "x" * 24])
    assert long.exit_code == 0 and "warning" not in long.output
