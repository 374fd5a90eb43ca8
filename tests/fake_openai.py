"""A local OpenAI-compatible server for tests and benchmarks: the remote side, faults included.

A small HTTP/1.1 keep-alive server on asyncio streams (no framework: it must serve thousands
of requests per second on a 2-core machine next to the client under test, and it must be able
to misbehave at the byte level). It serves

    POST /v1/chat/completions          scripted latency, 429 + Retry-After, 500, timeouts,
                                       truncated / non-JSON / choice-less 200 bodies, and
                                       right, wrong, unparseable or rambling answers; `n`
                                       choices; JSON for a `response_format` (or a 400)
    GET  /props                        {"total_slots": N} when `advertise_slots`
                                       (with `max_n`: n above it is refused, as llama.cpp
                                       does above its slots)
    POST /v1/files, GET /v1/files/ID[/content]
    POST /v1/batches, GET /v1/batches/ID
    GET  /_stats                       counters (also `FakeOpenAI.stats()` in-process)

Saturating mode (`slots=N`): like a local engine, at most N completions are generated at a
time, each taking `latency_s`; the rest wait in a FIFO queue, so latency grows with the queue.
A request the client abandoned (timeout) keeps its place and its slot: the engine does not
know the client left.

Answers: the question is read from the last user message ("Question: ...", the context is
what precedes it) and looked up in the `answers` dict the test passes in: (question, context)
-> gold program, or question -> gold program. Faults are drawn per
(question, attempt number) from a hash, so a run is reproducible whatever the request order.

    python tests/fake_openai.py --latency 0.1     # prints "PORT <n>", serves until killed
"""

from __future__ import annotations

import argparse
import asyncio
import email.parser
import email.policy
import hashlib
import json
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

_QUESTION = re.compile(r"Question: (.*?)(?:\n\n|\Z)", re.S)


@dataclass
class FakeConfig:
    latency_s: float = 0.0
    p429: float = 0.0
    p500: float = 0.0
    ptimeout: float = 0.0
    pgarbage: float = 0.0
    p_wrong: float = 0.0
    p_unparseable: float = 0.0
    p_judge_no: float = 0.0
    p_ramble: float = 0.0             # an answer far longer than any max_tokens
    slots: int = 0                    # > 0: saturating engine with that many slots
    advertise_slots: bool = False     # answer GET /props like llama.cpp
    timings: bool = False             # say how long each answer was served, like llama.cpp
    supports_n: bool = True           # answer n > 1 with n choices (else one, like Ollama)
    max_n: int = 0                    # > 0: refuse a larger n with llama.cpp's 400
    response_format: str = "json"     # json: honour it | ignore | reject (400)
    retry_after: str = "0"
    timeout_sleep_s: float = 30.0
    api_key: str | None = None       # when set, other keys get a 401 that echoes them
    seed: int = 0
    styles: bool = True               # vary the formatting of right answers
    batch_delay_s: float = 0.0
    p_batch_line_error: float = 0.0
    # question -> outcome of attempt 1, 2, ... (None = answer); overrides the random draw
    scripted: dict[str, list[str | None]] = field(default_factory=dict)


@dataclass
class _Batch:
    id: str
    input_file_id: str
    created: float
    status: str = "validating"
    output_file_id: str | None = None
    error_file_id: str | None = None
    counts: dict[str, int] = field(default_factory=lambda: {"total": 0, "completed": 0,
                                                            "failed": 0})


def _u(*parts: object) -> float:
    """A uniform [0, 1) number determined by parts."""
    h = hashlib.blake2b(repr(parts).encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") / 2**64


class FakeOpenAI:
    def __init__(self, answers: dict[str, str] | None = None,
                 finals: dict[Any, str] | None = None, **config: Any) -> None:
        self.answers: dict[str, str] = dict(answers or {})
        # Final answers for CoT replies: looked up, never computed by running a program.
        self.finals: dict[Any, str] = dict(finals or {})
        self.cfg = FakeConfig(**config)
        self.kinds: Counter[str] = Counter()          # outcome of every HTTP request
        self.served: Counter[str] = Counter()         # valid 200 completions per question
        self.attempts: Counter[str] = Counter()       # completion requests per question
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, _Batch] = {}
        self.synthesized = 0
        self.queued = 0                               # saturating mode: waiting + in service
        self.peak_queued = 0
        self.inside: Counter[str] = Counter()         # saturating mode: attempts held now
        self._slots: asyncio.Semaphore | None = None
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.port = 0
        self.prefix = hashlib.md5(str(time.time_ns()).encode()).hexdigest()[:6]  # unique ids
        self._open = threading.Event()  # cleared by hold(): completions wait for release()
        self._open.set()
        self.held = 0                                 # completions waiting on hold() now

    # ------------------------------------------------------------- lifecycle
    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAI:
        ready = threading.Event()

        def run() -> None:
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            server = self._loop.run_until_complete(
                asyncio.start_server(self._connection, "127.0.0.1", self.port, backlog=4096))
            self.port = server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()
            server.close()
            # Close kept-alive connections and pending handlers before the loop goes away.
            pending = asyncio.all_tasks(self._loop)
            for t in pending:
                t.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.close()

        self._thread = threading.Thread(target=run, name="fake-openai", daemon=True)
        self._thread.start()
        ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {"kinds": dict(self.kinds), "served": dict(self.served),
                    "attempts": dict(self.attempts), "requests": sum(self.kinds.values()),
                    "served_total": sum(self.served.values()),
                    "peak_queued": self.peak_queued, "held": self.held}

    def hold(self) -> None:
        """Completions wait (the client sees a slow engine) until `release()`: a run that
        must still be going while a test checks something else."""
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def reset_counts(self) -> None:
        with self._lock:
            self.kinds.clear()
            self.served.clear()
            self.attempts.clear()
            self.peak_queued = 0

    # ------------------------------------------------------------------ HTTP
    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                length = int(headers.get("content-length") or 0)
                body = await reader.readexactly(length) if length else b""
                status, ctype, payload, extra = await self._route(method, target, headers,
                                                                  body)
                head_out = [f"HTTP/1.1 {status} {_REASONS.get(status, 'X')}",
                            f"content-type: {ctype}", f"content-length: {len(payload)}",
                            "connection: keep-alive"]
                head_out += [f"{k}: {v}" for k, v in extra.items()]
                writer.write(("\r\n".join(head_out) + "\r\n\r\n").encode() + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def _route(self, method: str, target: str, headers: dict[str, str],
                     body: bytes) -> tuple[int, str, bytes, dict[str, str]]:
        path = target.split("?", 1)[0]
        if path == "/_stats":
            return _json(200, self.stats())
        if path == "/props" and self.cfg.advertise_slots:
            return _json(200, {"total_slots": self.cfg.slots})
        key = headers.get("authorization", "").removeprefix("Bearer ").strip()
        if self.cfg.api_key is not None and key != self.cfg.api_key:
            with self._lock:
                self.kinds["401"] += 1
            # Real providers echo (part of) the key; a leak test must see it scrubbed.
            return _json(401, {"error": {"message": f"Incorrect API key provided: {key}",
                                         "type": "invalid_request_error"}})
        if method == "POST" and path == "/v1/chat/completions":
            return await self._chat(json.loads(body))
        if method == "POST" and path == "/v1/files":
            return self._upload(headers, body)
        m = re.fullmatch(r"/v1/files/([\w-]+)(/content)?", path)
        if method == "GET" and m:
            data = self.files.get(m.group(1))
            if data is None:
                return _json(404, {"error": {"message": "no such file"}})
            if m.group(2):
                return 200, "application/octet-stream", data, {}
            return _json(200, {"id": m.group(1), "object": "file", "bytes": len(data),
                               "created_at": 0, "filename": "x.jsonl", "purpose": "batch",
                               "status": "processed"})
        if method == "POST" and path == "/v1/batches":
            return self._create_batch(json.loads(body))
        m = re.fullmatch(r"/v1/batches/([\w-]+)", path)
        if method == "GET" and m:
            return self._retrieve_batch(m.group(1))
        return _json(404, {"error": {"message": f"no route {method} {path}"}})

    # ------------------------------------------------------------ completions
    def _fault(self, question: str, attempt: int) -> str | None:
        script = self.cfg.scripted.get(question.split(" [", 1)[0])
        if script is not None:
            return script[attempt - 1] if attempt <= len(script) else None
        u = _u(self.cfg.seed, "fault", question, attempt)  # question = _ident(...)
        for kind, p in (("429", self.cfg.p429), ("500", self.cfg.p500),
                        ("timeout", self.cfg.ptimeout), ("garbage", self.cfg.pgarbage)):
            if u < p:
                return kind
            u -= p
        return None

    async def _chat(self, req: dict[str, Any]) -> tuple[int, str, bytes, dict[str, str]]:
        messages = req.get("messages") or []
        system = next((m["content"] for m in messages if m["role"] == "system"), "")
        user = [m["content"] for m in messages if m["role"] == "user"][-1]
        question, context = _split(user)
        if "response_format" in req and self.cfg.response_format == "reject":
            self._count("400")
            return _json(400, {"error": {"message": "response_format is not supported"}})
        if self.cfg.max_n and int(req.get("n") or 1) > self.cfg.max_n:
            self._count("400_n")  # llama.cpp's words (its n is capped by its slots)
            return _json(400, {"error": {
                "code": 400, "type": "invalid_request_error",
                "message": f"Field 'n': Value must be between 1 <= value <= {self.cfg.max_n}, "
                           f"but got {req.get('n')}"}})
        with self._lock:
            self.attempts[_ident(question, context)] += 1
            attempt = self.attempts[_ident(question, context)]
        if not self._open.is_set():
            with self._lock:
                self.held += 1
            while not self._open.is_set():
                await asyncio.sleep(0.05)
            with self._lock:
                self.held -= 1
        if self.cfg.slots:
            await self._serve_in_slot(_ident(question, context))
        elif self.cfg.latency_s:
            await asyncio.sleep(self.cfg.latency_s)
        fault = self._fault(_ident(question, context), attempt)
        if fault == "429":
            self._count("429")
            return _json(429, {"error": {"message": "Rate limit reached", "type": "requests"}},
                         {"retry-after": self.cfg.retry_after})
        if fault == "500":
            self._count("500")
            return _json(500, {"error": {"message": "The server had an error"}})
        if fault == "timeout":
            self._count("timeout")
            await asyncio.sleep(self.cfg.timeout_sleep_s)
            return _json(200, {"error": "too late"})
        if fault == "garbage":
            self._count("garbage")
            variant = int(_u(self.cfg.seed, "g", question, attempt) * 3)
            if variant == 0:  # a truncated JSON body with a 200
                whole = json.dumps(self._completion(req, question, "ans = 1")).encode()
                return 200, "application/json", whole[: len(whole) // 2], {}
            if variant == 1:  # a proxy's HTML error page with a 200
                return 200, "text/html", b"<html><body>Bad gateway</body></html>", {}
            return _json(200, {"object": "chat.completion", "choices": []})
        n = int(req.get("n") or 1) if self.cfg.supports_n else 1
        structured = "response_format" in req and self.cfg.response_format == "json"
        contents = [self._answer(system, question, context, attempt, c, structured)
                    for c in range(n)]
        self._count("ok")
        with self._lock:
            self.served[_ident(question, context)] += 1
        out = self._completion(req, question, contents)
        if self.cfg.timings:
            out["timings"] = {"prompt_ms": 0.0, "predicted_ms": self.cfg.latency_s * 1000}
        return _json(200, out)

    async def _serve_in_slot(self, ident: str) -> None:
        """Wait for one of `slots` (FIFO), then generate for `latency_s` holding it."""
        if self._slots is None:
            self._slots = asyncio.Semaphore(self.cfg.slots)
        with self._lock:
            self.queued += 1
            self.peak_queued = max(self.peak_queued, self.queued)
            self.inside[ident] += 1
            if self.inside[ident] > 1:  # a retry while the engine still holds an attempt
                self.kinds["twice_in_flight"] += 1
        try:
            async with self._slots:
                await asyncio.sleep(self.cfg.latency_s)
        finally:
            with self._lock:
                self.queued -= 1
                self.inside[ident] -= 1

    def _count(self, kind: str) -> None:
        with self._lock:
            self.kinds[kind] += 1

    def _completion(self, req: dict[str, Any], question: str, content: str | list[str]
                    ) -> dict[str, Any]:
        chars = sum(len(m.get("content") or "") for m in req.get("messages") or [])
        limit = int(req.get("max_tokens") or 1_000_000)
        choices = []
        for i, text in enumerate([content] if isinstance(content, str) else content):
            cut = len(text) // 4 > limit  # about 4 characters a token
            choices.append({"index": i, "finish_reason": "length" if cut else "stop",
                            "message": {"role": "assistant",
                                        "content": text[:limit * 4] if cut else text}})
        out_tokens = sum(len(c["message"]["content"]) // 4 for c in choices)
        return {"id": f"chatcmpl-{abs(hash((question, str(content)))) % 10**12}",
                "object": "chat.completion", "created": int(time.time()),
                "model": req.get("model", "fake"), "choices": choices,
                "usage": {"prompt_tokens": chars // 4, "completion_tokens": out_tokens,
                          "total_tokens": chars // 4 + out_tokens}}

    def _answer(self, system: str, question: str, context: str, attempt: int,
                choice: int = 0, structured: bool = False) -> str:
        if "You write new math word problems" in system:
            text = self._synthesize(question, attempt)
            return json.dumps({"question": text}) if structured else text
        if "You review math" in system:
            no = _u(self.cfg.seed, "judge", question) < self.cfg.p_judge_no
            if structured:
                return json.dumps({"solvable": not no,
                                   "reason": "ambiguous" if no else "self-contained"})
            return "no: the question is ambiguous" if no else "yes: self-contained"
        program = self.answers.get((question, context), self.answers.get(question))
        # Choice 0 draws as a request without `n` did, so both ways see the same answers.
        draw = (attempt,) if choice == 0 else (attempt, choice)
        u = _u(self.cfg.seed, "answer", question, context, *draw)
        if _u(self.cfg.seed, "ramble", question, context, *draw) < self.cfg.p_ramble:
            return "Let me think about this for a while. " * 400
        if program is None or u < self.cfg.p_unparseable:
            return "I am sorry, I cannot help with that request."
        if u < self.cfg.p_unparseable + self.cfg.p_wrong:
            program = program.rstrip() + "\nans = ans + 1"
        if "Final answer" in system:  # the CoT prompt
            final = self.finals.get((question, context), self.finals.get(question))
            if final is None:
                return "I am sorry, I cannot help with that request."
            if program.rstrip().endswith("ans = ans + 1"):  # the scripted wrong answer
                final = str(float(final) + 1)
            return f"Working through the numbers step by step.\nFinal answer: {final}"
        style = int(_u(self.cfg.seed, "style", question) * 4) if self.cfg.styles else 0
        program = program.strip()
        return [
            f"```python\n{program}\n```",
            f"Here is the program:\n\n```python\n{program}\n```\n\nIt stores the result.",
            f"<think>Let me work it out.</think>\n```python3\n{program}\n```",
            f"We compute it directly.\n{program}\nThe variable ans holds the answer.",
        ][style]

    def _synthesize(self, prompt: str, attempt: int) -> str:
        # A new question whose gold program the server remembers, so that the teacher stage
        # can later be answered correctly.
        with self._lock:
            self.synthesized += 1
            n = self.synthesized
        a = 3 + int(_u(self.cfg.seed, "sa", prompt, n) * 90)
        b = 2 + int(_u(self.cfg.seed, "sb", prompt, n) * 40)
        text = (f"A bakery sells {a} boxes of muffins each day and every box holds {b} "
                f"muffins. How many muffins does it sell in {n % 5 + 2} days?")
        self.answers[text] = f"ans = {a} * {b} * {n % 5 + 2}"
        return text

    # --------------------------------------------------------------- batches
    def _upload(self, headers: dict[str, str], body: bytes) -> tuple[int, str, bytes,
                                                                     dict[str, str]]:
        msg = email.parser.BytesParser(policy=email.policy.default).parsebytes(
            f"content-type: {headers['content-type']}\r\n\r\n".encode() + body)
        data = b""
        for part in msg.iter_parts():
            if part.get_param("name", header="content-disposition") == "file":
                data = part.get_payload(decode=True) or b""
        with self._lock:
            file_id = f"file-{self.prefix}{len(self.files) + 1}"
            self.files[file_id] = data
            self.kinds["upload"] += 1
        return _json(200, {"id": file_id, "object": "file", "bytes": len(data),
                           "created_at": int(time.time()), "filename": "batch.jsonl",
                           "purpose": "batch", "status": "processed"})

    def _create_batch(self, req: dict[str, Any]) -> tuple[int, str, bytes, dict[str, str]]:
        with self._lock:
            batch = _Batch(f"batch_{self.prefix}{len(self.batches) + 1}",
                           req["input_file_id"], time.time())
            self.batches[batch.id] = batch
            self.kinds["batch_create"] += 1
        return _json(200, self._batch_json(batch))

    def _retrieve_batch(self, batch_id: str) -> tuple[int, str, bytes, dict[str, str]]:
        batch = self.batches.get(batch_id)
        if batch is None:
            return _json(404, {"error": {"message": "no such batch"}})
        self._count("batch_poll")
        if batch.status != "completed" and time.time() - batch.created >= self.cfg.batch_delay_s:
            self._run_batch(batch)
        elif batch.status == "validating":
            batch.status = "in_progress"
        return _json(200, self._batch_json(batch))

    def _run_batch(self, batch: _Batch) -> None:
        out, err = [], []
        for line in self.files[batch.input_file_id].decode().splitlines():
            if not line.strip():
                continue
            item = json.loads(line)
            body = item["body"]
            user = [m["content"] for m in body["messages"] if m["role"] == "user"][-1]
            system = next((m["content"] for m in body["messages"] if m["role"] == "system"), "")
            question, context = _split(user)
            with self._lock:
                self.attempts[_ident(question, context)] += 1
                attempt = self.attempts[_ident(question, context)]
            if _u(self.cfg.seed, "bline", item["custom_id"]) < self.cfg.p_batch_line_error:
                err.append({"id": f"r-{len(err)}", "custom_id": item["custom_id"],
                            "response": {"status_code": 500, "body": {"error": {
                                "message": "batch line failed"}}}, "error": None})
                continue
            content = self._answer(system, question, context, attempt)
            with self._lock:
                self.served[_ident(question, context)] += 1
            out.append({"id": f"r-{len(out)}", "custom_id": item["custom_id"],
                        "response": {"status_code": 200, "request_id": "x",
                                     "body": self._completion(body, question, content)},
                        "error": None})
        with self._lock:
            batch.output_file_id = f"file-{self.prefix}{len(self.files) + 1}"
            self.files[batch.output_file_id] = "\n".join(json.dumps(o) for o in out).encode()
            if err:
                batch.error_file_id = f"file-{self.prefix}{len(self.files) + 1}"
                self.files[batch.error_file_id] = "\n".join(json.dumps(e) for e in err).encode()
        batch.counts = {"total": len(out) + len(err), "completed": len(out), "failed": len(err)}
        batch.status = "completed"

    def _batch_json(self, b: _Batch) -> dict[str, Any]:
        return {"id": b.id, "object": "batch", "endpoint": "/v1/chat/completions",
                "errors": None, "input_file_id": b.input_file_id, "completion_window": "24h",
                "status": b.status, "output_file_id": b.output_file_id,
                "error_file_id": b.error_file_id, "created_at": int(b.created),
                "request_counts": b.counts}


class CountingProxy(FakeOpenAI):
    """Forwards every request to a real engine (`upstream`, its .../v1 URL) and counts them
    by "METHOD /path" in `kinds`: what a run really sent, seen from the engine's side. Like
    the engine, it carries on with a request whose client has gone."""

    def __init__(self, upstream: str) -> None:
        super().__init__()
        self.upstream = upstream.removesuffix("/v1").rstrip("/")
        self._http: Any = None

    async def _route(self, method: str, target: str, headers: dict[str, str],
                     body: bytes) -> tuple[int, str, bytes, dict[str, str]]:
        import httpx2

        if target.split("?", 1)[0] == "/_stats":
            return _json(200, self.stats())
        if self._http is None:  # created on the server's own loop
            self._http = httpx2.AsyncClient(timeout=None)
        self._count(f"{method} {target.split('?', 1)[0]}")
        r = await self._http.request(method, self.upstream + target, content=body,
                                     headers={"content-type": headers.get(
                                         "content-type", "application/json")})
        return r.status_code, r.headers.get("content-type", "application/json"), r.content, {}


def _split(user: str) -> tuple[str, str]:
    """(question, context) of a user turn rendered as "<context>\n\nQuestion: <q>..."."""
    found = list(_QUESTION.finditer(user))
    if not found:
        return user, ""
    return found[-1].group(1).strip(), user[:found[-1].start()].strip()


def _ident(question: str, context: str) -> str:
    """Counter key of one question: the same text over two tables is two questions."""
    if not context:
        return question
    return f"{question} [{hashlib.md5(context.encode()).hexdigest()[:8]}]"


_REASONS = {200: "OK", 401: "Unauthorized", 404: "Not Found", 429: "Too Many Requests",
            500: "Internal Server Error"}


def _json(status: int, obj: Any, extra: dict[str, str] | None = None
          ) -> tuple[int, str, bytes, dict[str, str]]:
    return status, "application/json", json.dumps(obj).encode(), extra or {}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--latency", type=float, default=0.0)
    ap.add_argument("--slots", type=int, default=0, help="saturating engine with N slots")
    ap.add_argument("--timings", action="store_true", help="report service times")
    args = ap.parse_args()
    server = FakeOpenAI(latency_s=args.latency, slots=args.slots, timings=args.timings,
                        styles=False)
    server.port = args.port
    server.start()
    print(f"PORT {server.port}", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
