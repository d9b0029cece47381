"""``bgeft data gen-queries``: questions for corpus passages from an OpenAI-compatible chat endpoint.

Python API (used by the pipeline)::

    generate_queries(corpus, out, *, base_url=None, model=None, api_key=None,
                     api_key_env="OPENAI_API_KEY", zh=2, en=1, concurrency=4, max_retries=5,
                     backoff=1.0, timeout=60.0, temperature=0.7, limit=None, encoding=None)
        -> QueryGenSummary

``base_url`` (e.g. ``https://api.deepseek.com/v1``) defaults to ``$OPENAI_BASE_URL``, ``model`` to
``$OPENAI_MODEL``, the key to ``$<api_key_env>`` (none for local servers). The key is sent only as the
``Authorization`` header: it is never printed, logged or written (error texts are scrubbed of it). Plain
``http://`` is accepted only for loopback hosts (a local server) unless ``--allow-insecure-http``, and
redirects are never followed (urllib would resend the key to wherever the answer points).

For every passage of ``corpus`` (BEIR ``corpus.jsonl``) the endpoint is asked for ``zh`` Chinese and
``en`` English questions answered by the passage; each becomes a row ``{"query": q, "pos": [passage],
"neg": []}`` (like ``bgeft data convert`` writes rows without negatives: run ``bgeft data mine`` next).
Requests run ``concurrency`` at a time; 429, 5xx, timeouts, refused connections and unreadable answers
are retried ``max_retries`` times with exponential backoff (``Retry-After`` honoured). Finished passages
are appended to ``OUT.partial`` as they complete; a rerun skips passages already in ``OUT`` or
``OUT.partial``, so an interrupted run resumes. ``OUT`` is written atomically once every passage has
questions; if some failed, the partial file stays and the command says to run it again.
"""
from __future__ import annotations

import argparse
import http.client
import ipaddress
import json
import os
import random
import re
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

from bgeft.console_progress import progress as progress_bar
from bgeft.data.records import read_corpus, write_jsonl
from bgeft.errors import UserError
from bgeft.safety import check_output

RETRY_STATUS = {408, 409, 425, 429, 500, 502, 503, 504}
SYSTEM = "You write search questions for a retrieval dataset. Answer with JSON only."
PROMPT = (
    "Passage:\n\"\"\"\n{passage}\n\"\"\"\n\n"
    "Write {zh} question(s) in Chinese and {en} question(s) in English that a reader might ask and that this "
    "passage answers. Each question must make sense without seeing the passage; vary the wording and do not "
    "copy whole sentences. Reply with JSON only: {{\"zh\": [...], \"en\": [...]}}"
)


@dataclass
class QueryGenSummary:
    out: str
    passages: int = 0
    skipped: int = 0
    generated: int = 0
    questions: int = 0
    failed: int = 0
    requests: int = 0
    retries: int = 0

    def lines(self) -> list[str]:
        return [f"{self.generated} passages got {self.questions} questions ({self.skipped} already done, "
                f"{self.failed} failed; {self.requests} requests, {self.retries} retries) -> {self.out}"]


class _Fatal(Exception):
    """An answer retrying cannot fix (bad key, unknown model, bad URL)."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Refuse every redirect: following one would resend the Authorization header to another place."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        raise _Fatal(f"{req.full_url} answered HTTP {code} redirecting to {newurl}; bgeft does not follow "
                     "redirects (the API key would go along): set --base-url to the final address")


_OPENER = urllib.request.build_opener(_NoRedirect)


def _loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain") or host.lower().endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(base_url: str, allow_insecure_http: bool = False) -> None:
    """Refuse what is not http(s), and plain http to a host other than this machine unless allowed."""
    if not base_url.startswith(("http://", "https://")):
        raise UserError(f"--base-url {base_url}: expected an http(s) URL such as https://api.deepseek.com/v1")
    host = urllib.parse.urlsplit(base_url).hostname or ""
    if base_url.startswith("http://") and not _loopback(host) and not allow_insecure_http:
        raise UserError(f"--base-url {base_url}: plain http to {host} would send the API key and the passages "
                        "unencrypted; use https, or pass --allow-insecure-http if this network is trusted")


class ChatClient:
    """Minimal OpenAI-compatible ``/chat/completions`` client over urllib with retries."""

    def __init__(self, base_url: str, model: str, api_key: str | None, *, timeout: float = 60.0,
                 max_retries: int = 5, backoff: float = 1.0, temperature: float = 0.7):
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model, self._key, self.timeout = model, api_key, timeout
        self.max_retries, self.backoff, self.temperature = max_retries, backoff, temperature
        self.lock = threading.Lock()
        self.requests = self.retries = 0

    def scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def _post(self, messages: list[dict]) -> str:
        body = json.dumps({"model": self.model, "messages": messages, "temperature": self.temperature}).encode()
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        with self.lock:
            self.requests += 1
        with _OPENER.open(request, timeout=self.timeout) as response:
            payload = json.loads(response.read().decode("utf-8"))
        return payload["choices"][0]["message"]["content"]

    def ask(self, messages: list[dict], parse) -> object:
        """POST ``messages`` and return ``parse(content)``, retrying what can be retried."""
        last = ""
        for attempt in range(self.max_retries + 1):
            wait = self.backoff * 2 ** attempt * (1 + random.random() / 10)
            try:
                return parse(self._post(messages))
            except urllib.error.HTTPError as exc:
                detail = self.scrub(exc.read()[:300].decode("utf-8", "replace"))
                last = f"HTTP {exc.code} {exc.reason}: {detail}".strip()
                if exc.code not in RETRY_STATUS:
                    raise _Fatal(f"{self.url} answered {last}") from None
                retry_after = exc.headers.get("Retry-After", "") if exc.headers else ""
                if retry_after.replace(".", "", 1).isdigit():
                    wait = min(float(retry_after), 60.0)
            except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as exc:
                last = f"cannot reach {self.url}: {getattr(exc, 'reason', exc)}"
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                last = f"unusable answer ({self.scrub(str(exc))[:200]})"
            if attempt < self.max_retries:
                with self.lock:
                    self.retries += 1
                time.sleep(wait)
        raise RuntimeError(self.scrub(last))


def parse_questions(content: str, zh: int, en: int) -> list[str]:
    """The questions in a model answer ``{"zh": [...], "en": [...]}`` (code fences tolerated)."""
    match = re.search(r"\{.*\}", content, re.S)
    if not match:
        raise ValueError("no JSON object in the answer")
    data = json.loads(match.group(0))
    questions = []
    for key, n in (("zh", zh), ("en", en)):
        items = data.get(key) or []
        if not isinstance(items, list):
            raise ValueError(f"{key!r} is not a list")
        questions += [q.strip() for q in items if isinstance(q, str) and q.strip()][:n]
    if not questions:
        raise ValueError("no questions in the answer")
    return list(dict.fromkeys(questions))


def _load_done(path: Path) -> dict[str, list[dict]]:
    """Finished passages in ``path`` (complete lines only; a cut-off last line is ignored)."""
    done: dict[str, list[dict]] = {}
    if not path.is_file():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(item, dict) and "rows" in item:
            done[item["passage"]] = item["rows"]
        elif isinstance(item, dict) and isinstance(item.get("pos"), list) and item["pos"]:
            done.setdefault(item["pos"][0], []).append(item)
    return done


def _setting(value, env: str, flag: str) -> str:
    value = value or os.environ.get(env)
    if not value:
        raise UserError(f"gen-queries needs {flag} or the {env} environment variable")
    return value


def generate_queries(corpus, out, *, base_url: str | None = None, model: str | None = None,
                     api_key: str | None = None, api_key_env: str = "OPENAI_API_KEY", zh: int = 2, en: int = 1,
                     concurrency: int = 4, max_retries: int = 5, backoff: float = 1.0, timeout: float = 60.0,
                     temperature: float = 0.7, limit: int | None = None, encoding: str | None = None,
                     allow_insecure_http: bool = False) -> QueryGenSummary:
    """Ask the endpoint for questions per passage of ``corpus`` and write training rows to ``out``."""
    base_url = _setting(base_url, "OPENAI_BASE_URL", "--base-url")
    model = _setting(model, "OPENAI_MODEL", "--model")
    check_base_url(base_url, allow_insecure_http)
    if zh < 0 or en < 0 or zh + en == 0:
        raise UserError("--zh/--en: ask for at least one question per passage")
    if concurrency < 1:
        raise UserError(f"--concurrency {concurrency}: must be at least 1")
    api_key = api_key if api_key is not None else os.environ.get(api_key_env)
    client = ChatClient(base_url, model, api_key, timeout=timeout, max_retries=max_retries, backoff=backoff,
                        temperature=temperature)
    passages = list(dict.fromkeys(text for _, text in read_corpus(corpus, encoding)))[:limit]
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    check_output(out, [corpus])
    check_output(partial, [corpus], what="-o (its resume file)")
    done = _load_done(out) | _load_done(partial)
    todo = [p for p in passages if p not in done]
    summary = QueryGenSummary(out=str(out), passages=len(passages), skipped=len(passages) - len(todo))

    def work(passage: str) -> list[dict]:
        messages = [{"role": "system", "content": SYSTEM},
                    {"role": "user", "content": PROMPT.format(passage=passage, zh=zh, en=en)}]
        questions = client.ask(messages, lambda c: parse_questions(c, zh, en))
        return [{"query": q, "pos": [passage], "neg": []} for q in questions]

    partial.parent.mkdir(parents=True, exist_ok=True)
    try:
        _run_all(client, work, todo, partial, done, summary, concurrency, api_key_env)
    finally:
        if partial.is_file() and partial.stat().st_size == 0:
            partial.unlink()
    summary.requests, summary.retries = client.requests, client.retries
    write_jsonl(out, (row for p in passages for row in done[p]))
    partial.unlink(missing_ok=True)
    return summary


def _run_all(client: ChatClient, work, todo: list[str], partial: Path, done: dict, summary: QueryGenSummary,
             concurrency: int, api_key_env: str) -> None:
    errors: list[str] = []
    with open(partial, "a", encoding="utf-8") as log, ThreadPoolExecutor(max_workers=concurrency) as pool, \
            progress_bar(len(todo), "gen-queries", "passages") as progress:
        futures = {pool.submit(work, p): p for p in todo}
        for future in as_completed(futures):
            try:
                rows = future.result()
            except _Fatal as exc:
                for f in futures:
                    f.cancel()
                raise UserError(f"{client.scrub(str(exc))}; check --base-url, --model and the API key "
                                f"(${api_key_env}); finished passages are kept in {partial}") from None
            except RuntimeError as exc:
                summary.failed += 1
                errors.append(str(exc))
            else:
                log.write(json.dumps({"passage": futures[future], "rows": rows}, ensure_ascii=False) + "\n")
                log.flush()
                done[futures[future]] = rows
                summary.generated += 1
                summary.questions += len(rows)
            progress.update(1)
    if summary.failed:
        raise UserError(f"{summary.failed} passages got no questions after {client.max_retries} retries "
                        f"(last: {errors[-1]}); run the same command again to retry them, finished passages are "
                        f"kept in {partial}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("corpus", metavar="CORPUS.jsonl", help="BEIR corpus (e.g. from `bgeft data split-book`)")
    parser.add_argument("-o", "--output", required=True, metavar="OUT.jsonl",
                        help="training rows {query, pos, neg: []}")
    parser.add_argument("--base-url", default=None, help="OpenAI-compatible API base URL (default $OPENAI_BASE_URL)")
    parser.add_argument("--model", default=None, help="chat model name (default $OPENAI_MODEL)")
    parser.add_argument(
        "--allow-insecure-http",
        action="store_true",
        help="allow a plain http:// --base-url on another machine (key and passages travel unencrypted)",
    )
    parser.add_argument("--api-key-env", default="OPENAI_API_KEY", metavar="VAR",
                        help="environment variable holding the API key (default OPENAI_API_KEY); keys are never "
                             "taken on the command line, where other users and shell history can see them")
    parser.add_argument("--zh", type=int, default=2, help="Chinese questions per passage (default 2)")
    parser.add_argument("--en", type=int, default=1, help="English questions per passage (default 1)")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight (default 4)")
    parser.add_argument("--max-retries", type=int, default=5)
    parser.add_argument("--backoff", type=float, default=1.0, help="first retry delay in seconds, doubled each time")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--limit", type=int, default=None, help="only the first N passages")
    parser.add_argument("--encoding", default=None, help="force the corpus encoding (default: detect)")


def run(args) -> int:
    summary = generate_queries(args.corpus, args.output, base_url=args.base_url, model=args.model,
                               api_key_env=args.api_key_env, zh=args.zh, en=args.en, concurrency=args.concurrency,
                               max_retries=args.max_retries, backoff=args.backoff, timeout=args.timeout,
                               temperature=args.temperature, limit=args.limit, encoding=args.encoding,
                               allow_insecure_http=args.allow_insecure_http)
    for line in summary.lines():
        print(line)
    return 0
