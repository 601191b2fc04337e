"""``spmm serve`` is private unless a flag says otherwise: no public share link whatever
``GRADIO_SHARE`` says, and a page reachable beyond this machine needs a login token or an
explicit ``--no-auth`` (a one-line refusal before anything is loaded)."""

from __future__ import annotations

import socket

import pytest

from spmm.cli import main

TOKEN = "a-long-enough-token"


@pytest.fixture
def launched(monkeypatch):
    """The arguments ``spmm serve`` launches the page with (page building and launching replaced)."""
    pytest.importorskip("gradio", reason="spmm serve needs the ui extra")
    import spmm.cli.page.app as page

    calls = []

    class Page:
        def block_thread(self):
            pass

    monkeypatch.setattr(page, "build_app", lambda folder, extra, options: Page())
    monkeypatch.setattr(page, "launch", lambda app, host, port, concurrency, **access: calls.append(
        {"host": host, **access}) or "http://x/")
    monkeypatch.delenv("SPMM_SERVE_TOKEN", raising=False)
    monkeypatch.setenv("GRADIO_SHARE", "True")
    return calls


@pytest.mark.parametrize("options, message", [
    (["--host", "0.0.0.0"], "--host 0.0.0.0 makes the page reachable beyond this machine"),
    (["--host", "192.168.1.5"], "--host 192.168.1.5 makes the page reachable beyond this machine"),
    (["--share"], "--share makes the page reachable beyond this machine"),
    (["--host", "0.0.0.0", "--auth-token", "short"], "at least 8 characters"),
    (["--auth-token", TOKEN, "--no-auth"], "--no-auth contradicts the token"),
])
def test_a_page_beyond_this_machine_without_a_token_is_refused(launched, capsys, options, message):
    assert main(["serve", *options]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err
    assert launched == []


@pytest.mark.parametrize("options, environment, host, share, login", [
    ([], None, "127.0.0.1", False, False),
    (["--host", "localhost"], None, "localhost", False, False),
    (["--host", "0.0.0.0", "--auth-token", TOKEN], None, "0.0.0.0", False, True),
    (["--host", "0.0.0.0"], TOKEN, "0.0.0.0", False, True),
    (["--host", "0.0.0.0", "--no-auth"], None, "0.0.0.0", False, False),
    (["--share", "--auth-token", TOKEN], None, "127.0.0.1", True, True),
])
def test_share_is_pinned_and_the_login_checks_the_token(launched, monkeypatch, capsys, options, environment, host,
                                                        share, login):
    if environment is not None:
        monkeypatch.setenv("SPMM_SERVE_TOKEN", environment)
    assert main(["serve", *options]) == 0
    (call,) = launched
    assert call["host"] == host and call["share"] is share
    if login:
        assert call["auth"]("anyone", TOKEN) is True
        assert call["auth"]("anyone", TOKEN[:-1]) is False and call["auth"]("anyone", "") is False
        assert "token as password" in capsys.readouterr().out
    else:
        assert call["auth"] is None


def test_the_launched_page_ignores_gradio_share_and_asks_for_the_token(monkeypatch):
    """A real Gradio server on localhost: GRADIO_SHARE=True opens no share link, and the page's
    config answers only after a login with the token."""
    gr = pytest.importorskip("gradio", reason="spmm serve needs the ui extra")
    import httpx

    from spmm.cli.page.app import launch

    monkeypatch.setenv("GRADIO_SHARE", "True")
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    with gr.Blocks() as app:
        gr.Markdown("private")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = launch(app, "127.0.0.1", port, 1, auth=lambda username, password: password == TOKEN)
    try:
        assert app.share is False and app.share_url is None
        with httpx.Client(timeout=30) as client:
            assert client.get(url + "config").status_code == 401
            assert client.post(url + "login", data={"username": "u", "password": "wrong"}).status_code != 200
            assert client.get(url + "config").status_code == 401
            assert client.post(url + "login", data={"username": "u", "password": TOKEN}).status_code == 200
            assert client.get(url + "config").status_code == 200
    finally:
        app.close()
