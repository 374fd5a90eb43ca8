"""Throughput of the LLM client against local OpenAI-compatible servers.

    .venv/bin/python bench/teacher.py --latency 0.1

Part 1, fixed latency (an elastic hosted API):
The server (tests/fake_openai.py) runs in its own process and answers every chat completion
after `latency` seconds, so the ideal throughput at C requests in flight is C / latency. For
16, 64 and 256 in flight we report what our client (tasks/llm/client.py: adaptive limit,
retry loop, JSON parsing, plain httpx underneath) reaches as a ratio to that ideal, its CPU
per request (time.process_time of this process only: the server is another process), and the
same for a bare httpx client at the same concurrency as the machine's ceiling. Goal: >= 0.85
of ideal at 64 in flight.

Part 2, a saturating server (a local engine): `--slots` requests are served at a time, each
taking `--service` seconds, the rest queue, and an abandoned request keeps its place (the
engine does not know the client left). Against it the same client with a ceiling of 64 runs
fixed (adaptive=False: 64 in flight, timeouts retried) and adaptive (the default), in the
same run: goodput (answered requests per second of wall time, against the server's capacity
slots / service) and HTTP attempts per request.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time

import _env  # noqa: E402, F401 - offline settings, the project on sys.path
from _env import ROOT  # noqa: E402

from bench._report import markdown_table, report  # noqa: E402

BODY = {"model": "gpt-4o-mini", "temperature": 0.0, "max_tokens": 256, "messages": [
    {"role": "system", "content": "You are a careful quantitative analyst."},
    {"role": "user", "content": "| a | 2019 | 2020 |\n|---|---|---|\n| Revenue | 1,250 | 1,410 |"
                                "\n\nQuestion: What was the change in revenue?\n\nWrite a "
                                "Python program that computes the answer."}]}


def start_server(latency: float, slots: int = 0, timings: bool = False
                 ) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fake_openai.py"),
                             "--latency", str(latency), "--slots", str(slots)]
                            + (["--timings"] if timings else []),
                            stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline() if proc.stdout else ""
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"fake server did not start: {line!r}")
    return proc, f"http://127.0.0.1:{line.split()[1]}/v1"


async def run_ours(base_url: str, conc: int, n: int) -> tuple[float, float, int]:
    from tasks.llm.client import ClientConfig, LLMClient

    cfg = ClientConfig(base_url=base_url, max_concurrency=conc, request_timeout_s=30)
    async with LLMClient(cfg, api_key="bench") as client:
        await asyncio.gather(*(client.complete(BODY) for _ in range(conc)))  # warm connections
        c0, t0 = time.process_time(), time.perf_counter()
        results = await asyncio.gather(*(client.complete(BODY) for _ in range(n)))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall, cpu, sum(r.ok for r in results)


async def run_saturated(base_url: str, n: int, timeout: float, adaptive: bool
                        ) -> tuple[float, int, int, float]:
    """(wall, answered, attempts, final limit) for n distinct requests, ceiling 64."""
    from tasks.llm.client import ClientConfig, LLMClient

    cfg = ClientConfig(base_url=base_url, max_concurrency=64, request_timeout_s=timeout,
                       adaptive=adaptive, max_retries=6, backoff_base_s=0.5)
    bodies = [{**BODY, "messages": [BODY["messages"][0], {
        "role": "user", "content": f"Question: {i} + {i} = ?"}]} for i in range(n)]
    async with LLMClient(cfg, api_key="bench") as client:
        t0 = time.perf_counter()
        results = await asyncio.gather(*(client.complete(b) for b in bodies))
        wall = time.perf_counter() - t0
        return wall, sum(r.ok for r in results), client.attempts, client.limiter.limit


def saturating(slots: int, service: float, n: int, timeout: float) -> list[list[object]]:
    rows = []
    capacity = slots / service
    variants = [("fixed 64", False, False), ("adaptive, latency only", True, False),
                ("adaptive, engine timings", True, True)]
    for name, adaptive, timings in variants:
        # A fresh engine with an empty queue; "timings": it reports each request's service
        # time as llama.cpp does (vLLM and Ollama do not).
        proc, base_url = start_server(service, slots, timings)
        try:
            wall, ok, attempts, limit = asyncio.run(run_saturated(base_url, n, timeout,
                                                                  adaptive))
        finally:
            proc.kill()
            proc.wait()
        rows.append([name, n, ok, n - ok, round(wall, 1),
                     round(ok / wall, 2), (ok / wall) / capacity, attempts / n,
                     round(limit, 1)])
        print(rows[-1], flush=True)
    return rows


async def run_raw(base_url: str, conc: int, n: int) -> tuple[float, float, int]:
    import httpx2

    limits = httpx2.Limits(max_connections=conc, max_keepalive_connections=conc)
    sem = asyncio.Semaphore(conc)
    async with httpx2.AsyncClient(limits=limits, timeout=30) as http:
        async def one() -> bool:
            async with sem:
                r = await http.post(f"{base_url}/chat/completions", json=BODY,
                                    headers={"authorization": "Bearer bench"})
                return r.status_code == 200
        await asyncio.gather(*(one() for _ in range(conc)))
        c0, t0 = time.process_time(), time.perf_counter()
        ok = await asyncio.gather(*(one() for _ in range(n)))
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return wall, cpu, sum(ok)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.1)
    ap.add_argument("--rounds", type=int, default=20, help="requests = rounds * in-flight")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[16, 64, 256])
    ap.add_argument("--slots", type=int, default=4, help="saturating server: slots")
    ap.add_argument("--service", type=float, default=0.2, help="saturating server: seconds "
                    "per request")
    ap.add_argument("--saturating-n", type=int, default=300, help="requests per variant")
    ap.add_argument("--timeout", type=float, default=2.0, help="client timeout against the "
                    "saturating server")
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    load_before = os.getloadavg()[0]
    proc, base_url = start_server(args.latency)
    rows = []
    try:
        for conc in args.concurrency:
            n = conc * args.rounds
            ideal = conc / args.latency
            wall, cpu, ok = asyncio.run(run_ours(base_url, conc, n))
            rwall, rcpu, rok = asyncio.run(run_raw(base_url, conc, n))
            assert ok == n and rok == n, (ok, rok, n)
            rows.append([conc, n, round(ideal), round(n / wall), (n / wall) / ideal,
                         cpu / n * 1000, round(n / rwall), (n / rwall) / ideal,
                         rcpu / n * 1000])
            print(rows[-1], flush=True)
    finally:
        proc.kill()
        proc.wait()
    sat = saturating(args.slots, args.service, args.saturating_n, args.timeout)
    header = ["in flight", "requests", "ideal req/s", "client req/s", "**ratio to ideal**",
              "client CPU ms/req", "bare httpx req/s", "bare ratio", "bare CPU ms/req"]
    body = (markdown_table(header, rows)
            + f"\n\nServer latency {args.latency * 1000:.0f} ms, server in a separate process "
            "on the same machine (tests/fake_openai.py). `client` is LLMClient.complete (httpx "
            "pools of 16 connections, our adaptive limit (it stays at 64 here: no queue), retry "
            "loop, status mapping and JSON parsing of the body); `bare` "
            "is httpx alone posting the same body, the ceiling this machine allows. CPU is "
            "time.process_time of the client process per request. Goal: ratio >= 0.85 at 64. "
            f"1-min load average before/after: {load_before:.1f}/{os.getloadavg()[0]:.1f} "
            f"on {os.cpu_count()} CPUs (client, server and anything else on the machine share "
            "them).")
    sat_header = ["client", "requests", "answered", "failed", "wall s", "goodput req/s",
                  "**goodput / capacity**", "**attempts per request**", "final limit"]
    body += (f"\n\nSaturating server (a local engine): {args.slots} slots, "
             f"{args.service * 1000:.0f} ms per request (capacity "
             f"{args.slots / args.service:.0f} req/s), queue unbounded, abandoned requests "
             f"still served; client ceiling 64, timeout {args.timeout:g} s, 6 retries.\n\n"
             + markdown_table(sat_header, sat))
    report("teacher", body, args)


if __name__ == "__main__":
        main()
