"""bgeft data gen-queries against a scripted OpenAI-compatible server on 127.0.0.1."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bgeft.data.querygen import _load_done, generate_queries, parse_questions
from bgeft.errors import UserError

SECRET = "sk-test-DO-NOT-LEAK-42"
PASSAGES = ["渡口在镇子的南头。", "钟表铺在石板街的尽头。", "FAIL 大水在七月来了。", "林远舟教语文和音乐。"]


class ChatServer:
    """Answers /chat/completions; the first call for every passage gets 503 or 429, then an answer.
    Passages containing FAIL get 500 while ``fail`` is set. Records requests and peak concurrency."""

    def __init__(self):
        self.calls, self.fail, self.in_flight, self.peak = [], True, 0, 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                passage = body["messages"][1]["content"].split('"""')[1].strip()
                with server.lock:
                    server.calls.append((self.path, self.headers.get("Authorization"), body["model"], passage))
                    first = sum(c[3] == passage for c in server.calls) == 1
                    server.in_flight += 1
                    server.peak = max(server.peak, server.in_flight)
                time.sleep(0.05)
                with server.lock:
                    server.in_flight -= 1
                if self.headers.get("Authorization") != f"Bearer {SECRET}":
                    return self._send(401, {"error": {"message": "Incorrect API key provided"}})
                if body["model"] == "missing-model":
                    return self._send(404, {"error": {"message": "model not found"}})
                if first:
                    return self._send(429 if "钟" in passage else 503, {"error": "busy"}, {"Retry-After": "0"})
                if "FAIL" in passage and server.fail:
                    return self._send(500, {"error": "boom"})
                answer = {"zh": [f"{passage[:4]}在哪里？", f"{passage[:4]}是什么？"],
                          "en": [f"What about {len(passage)}?"]}
                content = "```json\n" + json.dumps(answer, ensure_ascii=False) + "\n```"
                return self._send(200, {"choices": [{"message": {"role": "assistant", "content": content}}]})

            def _send(self, code, payload, headers=None):
                data = json.dumps(payload).encode()
                self.send_response(code)
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture
def server():
    s = ChatServer()
    yield s
    s.httpd.shutdown()


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps({"_id": f"d{i}", "title": "", "text": t}, ensure_ascii=False) + "\n"
                            for i, t in enumerate(PASSAGES)), encoding="utf-8")
    return path


def all_output(tmp_path, *texts):
    return "".join(texts) + "".join(p.read_text(encoding="utf-8") for p in tmp_path.rglob("*") if p.is_file())


def test_retries_resume_and_secret(server, corpus, tmp_path, monkeypatch, run_cli):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("OPENAI_MODEL", "chat-test")
    out = tmp_path / "train.jsonl"
    args = ("data", "gen-queries", corpus, "-o", out, "--base-url", server.url, "--backoff", "0.01",
            "--max-retries", "2", "--concurrency", "2", "--zh", "2", "--en", "1")
    code, stdout, stderr = run_cli(*args)
    assert code == 2 and "1 passages got no questions after 2 retries (last: HTTP 500" in stderr
    assert "run the same command again" in stderr and not out.exists()
    assert server.peak == 2 and {c[0] for c in server.calls} == {"/v1/chat/completions"}
    assert {c[1] for c in server.calls} == {f"Bearer {SECRET}"} and {c[2] for c in server.calls} == {"chat-test"}
    first_run = len(server.calls)
    assert first_run == 3 * 2 + 3  # 3 passages: 503/429 then answer; FAIL: 1 + 2 retries

    server.fail = False
    code, stdout2, stderr2 = run_cli(*args)
    assert code == 0 and "1 passages got 3 questions (3 already done, 0 failed" in stdout2
    assert [c[3] for c in server.calls[first_run:]] == [PASSAGES[2]]  # only the failed passage is asked again
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 12 and [r["pos"][0] for r in rows[::3]] == PASSAGES  # corpus order
    assert rows[0] == {"query": "渡口在镇在哪里？", "pos": [PASSAGES[0]], "neg": []}
    assert not (tmp_path / "train.jsonl.partial").exists()
    assert SECRET not in all_output(tmp_path, stdout, stderr, stdout2, stderr2)

    code, stdout3, _ = run_cli(*args)  # everything done: no requests
    assert code == 0 and "0 passages got 0 questions (4 already done" in stdout3 and len(server.calls) == first_run + 1


def test_fatal_answers_stop_without_leaking(server, corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MY_KEY", "wrong-" + SECRET)
    with pytest.raises(UserError, match=r"answered HTTP 401 Unauthorized: .*Incorrect API key.*\$MY_KEY") as exc:
        generate_queries(corpus, tmp_path / "o.jsonl", base_url=server.url, model="m", api_key_env="MY_KEY",
                         backoff=0.01)
    assert SECRET not in str(exc.value) + "".join(capsys.readouterr())
    with pytest.raises(UserError, match="answered HTTP 404 Not Found"):
        generate_queries(corpus, tmp_path / "o.jsonl", base_url=server.url, model="missing-model", api_key=SECRET,
                         backoff=0.01)
    assert not (tmp_path / "o.jsonl").exists() and not (tmp_path / "o.jsonl.partial").exists()


def test_resume_ignores_a_cut_off_line(tmp_path):
    partial = tmp_path / "o.jsonl.partial"
    partial.write_text(json.dumps({"passage": "a", "rows": [{"query": "q", "pos": ["a"]}]}) + "\n"
                       + '{"passage": "b", "rows": [{"query": "q2", "po', encoding="utf-8")
    assert _load_done(partial) == {"a": [{"query": "q", "pos": ["a"]}]}


def test_settings_errors(corpus, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_MODEL", raising=False)
    with pytest.raises(UserError, match="gen-queries needs --base-url or the OPENAI_BASE_URL environment variable"):
        generate_queries(corpus, tmp_path / "o.jsonl", model="m")
    with pytest.raises(UserError, match="--base-url ftp://x: expected an http"):
        generate_queries(corpus, tmp_path / "o.jsonl", base_url="ftp://x", model="m")
    with pytest.raises(UserError, match="cannot reach http://127.0.0.1:9/chat/completions"):
        generate_queries(corpus, tmp_path / "o.jsonl", base_url="http://127.0.0.1:9", model="m", max_retries=1,
                         backoff=0.01, concurrency=1)


def test_parse_questions():
    assert parse_questions('好的：{"zh": ["甲？", "乙？", "丙？"], "en": ["A?", "A?"]}', 2, 1) == ["甲？", "乙？", "A?"]
    with pytest.raises(ValueError, match="no questions"):
        parse_questions('{"zh": [], "en": [""]}', 2, 1)
    with pytest.raises(ValueError, match="no JSON object"):
        parse_questions("sorry", 2, 1)
