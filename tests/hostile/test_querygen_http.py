"""gen-queries never sends the API key in clear to another machine, nor along a redirect (issue 9, item 11).

Only loopback servers are used: a "remote" origin is another port on 127.0.0.1."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bgeft.data.querygen import check_base_url, generate_queries
from bgeft.errors import UserError

SECRET = "sk-hostile-0123456789"


class _Server:
    """A loopback HTTP server; ``redirect_to`` makes it answer every POST with a redirect there."""

    def __init__(self, redirect_to: str | None = None, code: int = 307):
        self.seen: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                outer.seen.append({"method": self.command, "path": self.path, "headers": dict(self.headers)})
                if redirect_to:
                    self.send_response(code)
                    self.send_header("Location", redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps({"choices": [{"message": {"content": '{"zh": ["问题"], "en": ["q?"]}'}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text(json.dumps({"_id": "d1", "title": "", "text": "The river runs to the sea."}) + "\n")
    return path


def test_plain_http_to_another_host_is_refused(corpus, tmp_path, tree, run_cli, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    tree.snapshot()
    code, out, err = run_cli("data", "gen-queries", corpus, "-o", tmp_path / "q.jsonl", "--base-url",
                             "http://api.example.com/v1", "--model", "m")
    assert code == 2
    assert err == ("bgeft: error: --base-url http://api.example.com/v1: plain http to api.example.com would send "
                   "the API key and the passages unencrypted; use https, or pass --allow-insecure-http if this "
                   "network is trusted\n")
    assert SECRET not in out + err
    tree.assert_untouched()


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/v1", "http://localhost:8000", "http://[::1]:8000/v1",
                                 "https://api.example.com/v1"])
def test_loopback_http_and_https_pass(url):
    check_base_url(url)


def test_allow_insecure_http_is_explicit():
    with pytest.raises(UserError, match="plain http to 10.0.0.5 would send"):
        check_base_url("http://10.0.0.5:8000/v1")
    check_base_url("http://10.0.0.5:8000/v1", allow_insecure_http=True)


@pytest.mark.parametrize("code", [302, 307, 308])
def test_redirect_to_another_origin_is_not_followed(corpus, tmp_path, tree, code):
    other = _Server()
    first = _Server(redirect_to=other.url + "/chat/completions", code=code)
    try:
        tree.snapshot()
        with pytest.raises(UserError) as info:
            generate_queries(corpus, tmp_path / "q.jsonl", base_url=first.url, model="m", api_key=SECRET,
                             max_retries=0, backoff=0)
    finally:
        first.close()
        other.close()
    assert str(info.value) == (
        f"{first.url}/chat/completions answered HTTP {code} redirecting to {other.url}/chat/completions; bgeft "
        "does not follow redirects (the API key would go along): set --base-url to the final address; check "
        "--base-url, --model and the API key ($OPENAI_API_KEY); finished passages are kept in "
        f"{tmp_path / 'q.jsonl.partial'}")
    assert first.seen and first.seen[0]["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert other.seen == []  # the key never reached the other origin
    assert SECRET not in str(info.value)
    tree.assert_untouched()
    tree.assert_no_temp()


def test_loopback_server_still_works(corpus, tmp_path):
    server = _Server()
    try:
        summary = generate_queries(corpus, tmp_path / "q.jsonl", base_url=server.url, model="m", api_key=SECRET,
                                   zh=1, en=1, max_retries=0)
    finally:
        server.close()
    assert summary.questions == 2 and len((tmp_path / "q.jsonl").read_text().splitlines()) == 2
