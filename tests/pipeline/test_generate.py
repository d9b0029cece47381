"""queries.generate: questions written by an OpenAI-compatible endpoint (a stub on 127.0.0.1)."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from bgeft.errors import UserError
from bgeft.pipeline.graph import build_stages
from bgeft.pipeline.runner import Runner
from bgeft.pipeline.spec import load_spec
from bgeft.pipeline.stages.text_stages import run_corpus, run_queries, run_split

from .helpers import tiny_pipeline


@pytest.fixture
def endpoint():
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            passage = body["messages"][-1]["content"].split('"""')[1].strip()
            seen.append((self.headers.get("Authorization"), passage))
            content = json.dumps({"zh": [f"关于“{passage[:6]}”的问题？"], "en": []}, ensure_ascii=False)
            data = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", seen
    httpd.shutdown()


def test_generated_questions_feed_the_split(tmp_path, endpoint, monkeypatch):
    url, seen = endpoint
    monkeypatch.setenv("STUB_KEY", "sk-stub-secret")
    model = tmp_path / "model"
    model.mkdir()
    generate = f"{{base_url: {url}, model: stub, api_key_env: STUB_KEY, zh: 1, en: 0, concurrency: 2}}"
    spec = load_spec(tiny_pipeline(tmp_path, model), ["corpus.max_tokens=null", "~queries.file",
                                                      f"queries.generate={generate}"])
    stages = build_stages(spec)
    Runner(spec, stages[:3], out=open("/dev/null", "w")).run(
        {"corpus": run_corpus, "queries": run_queries, "split": run_split})
    passages = (stages[0].dir / "corpus.jsonl").read_text().count("\n")
    assert len(seen) == passages and all(auth == "Bearer sk-stub-secret" for auth, _ in seen)
    queries = [json.loads(x) for x in (stages[1].dir / "queries.jsonl").read_text().splitlines()]
    assert len(queries) == passages and all(len(q["positives"]) == 1 for q in queries)
    counts = json.loads((stages[2].dir / "split.json").read_text())["questions"]
    assert sum(counts.values()) == passages
    manifest = (stages[1].dir / "stage.json").read_text()
    assert "sk-stub-secret" not in manifest


def test_a_key_written_into_the_file_is_refused(tmp_path):
    model = tmp_path / "model"
    model.mkdir()
    spec = load_spec(tiny_pipeline(tmp_path, model), ["corpus.max_tokens=null", "~queries.file",
                                                      "queries.generate={base_url: http://x, api_key: sk-1}"])
    stages = build_stages(spec)
    with pytest.raises(UserError, match="queries.generate.api_key: never write the key into a file"):
        Runner(spec, stages[:2], out=open("/dev/null", "w")).run({"corpus": run_corpus, "queries": run_queries})
