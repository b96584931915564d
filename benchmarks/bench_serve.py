"""`phototox serve` under bursts of concurrent valid requests: 200 / 503 / reset counts and latency.

    python benchmarks/bench_serve.py                          # 4 rounds x 50 concurrent, 256x256 frames
    python benchmarks/bench_serve.py --rounds 6 --concurrency 50 --size 224 --out benchmarks/results/serve.json

Starts `phototox serve` on 127.0.0.1 with an ephemeral port in a subprocess (loopback only), then
in each round opens ``--concurrency`` connections at once (a barrier), each POSTing one frame, and
counts the answers: 200, 503 (busy, with Retry-After), other statuses, and connections reset or
closed without an answer. Latencies are from the barrier to the full answer. Everything is
bounded: at most 20 rounds of at most 200 requests, each request times out after ``--timeout``
seconds, the whole run stops after ``--budget`` seconds, and the server is stopped at the end.
"""

from __future__ import annotations

import argparse
import http.client
import json
import platform
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

HOST = "127.0.0.1"


def start_server(model: str, extra: list[str]) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "phototox",
            "serve",
            "--host",
            HOST,
            "--port",
            "0",
            "--device",
            "cpu",
            "--model",
            model,
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = proc.stdout.readline()
    if "phototox serve:" not in line:
        proc.kill()
        raise SystemExit(f"server did not start: {line!r}")
    return proc, int(line.split(f"{HOST}:")[1].split("/")[0])


def one_request(port: int, body: bytes, size: int, barrier: threading.Barrier, timeout: float) -> tuple[str, float]:
    barrier.wait()
    started = time.monotonic()
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(
            "POST",
            f"/v1/analyse?width={size}&height={size}&stride=32",
            body,
            {"Content-Type": "application/octet-stream"},
        )
        response = conn.getresponse()
        response.read()
        outcome = str(response.status)
    except (ConnectionResetError, BrokenPipeError):
        outcome = "reset"
    except (http.client.RemoteDisconnected, http.client.IncompleteRead):
        outcome = "closed"
    except TimeoutError:
        outcome = "timeout"
    finally:
        conn.close()
    return outcome, time.monotonic() - started


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--size", type=int, default=256, help="square frame side (px, at least 220)")
    parser.add_argument("--timeout", type=float, default=120.0, help="per request (s)")
    parser.add_argument("--budget", type=float, default=600.0, help="whole run (s)")
    parser.add_argument("--server-arg", action="append", default=[], help="extra `phototox serve` argument")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    rounds, concurrency = min(args.rounds, 20), min(args.concurrency, 200)
    body = np.random.default_rng(0).normal(100, 10, (args.size, args.size)).astype("<f4").tobytes()

    proc, port = start_server(args.model, args.server_arg)
    results = []
    deadline = time.monotonic() + args.budget
    try:
        for index in range(rounds):
            if time.monotonic() > deadline:
                print(f"budget of {args.budget} s used up after {index} round(s)")
                break
            barrier = threading.Barrier(concurrency, timeout=30)
            started = time.monotonic()
            with ThreadPoolExecutor(concurrency) as pool:
                futures = [
                    pool.submit(one_request, port, body, args.size, barrier, args.timeout) for _ in range(concurrency)
                ]
                answers = [f.result() for f in futures]
            wall = time.monotonic() - started
            counts = {key: sum(a == key for a, _ in answers) for key in ("200", "503", "reset", "closed", "timeout")}
            counts["other"] = concurrency - sum(counts.values())
            ok = [t for a, t in answers if a == "200"]
            busy = [t for a, t in answers if a == "503"]
            results.append(
                {
                    "round": index + 1,
                    **counts,
                    "wall_s": wall,
                    "p50_200_s": percentile(ok, 50),
                    "p95_200_s": percentile(ok, 95),
                    "max_200_s": max(ok, default=float("nan")),
                    "p95_503_s": percentile(busy, 95),
                }
            )
            time.sleep(1.0)  # let the queue drain between rounds
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()

    print(
        f"{concurrency} concurrent POSTs of a {args.size}x{args.size} frame, stride 32, model {args.model}, "
        f"CPU ({platform.machine()}), {len(results)} round(s)\n"
    )
    print(
        "| round | 200 | 503 | reset | closed/timeout/other | p50 200 (s) | p95 200 (s) | max 200 (s) "
        "| p95 503 (s) | round wall (s) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['round']} | {r['200']} | {r['503']} | {r['reset']} | {r['closed'] + r['timeout'] + r['other']} "
            f"| {r['p50_200_s']:.2f} | {r['p95_200_s']:.2f} | {r['max_200_s']:.2f} | {r['p95_503_s']:.3f} "
            f"| {r['wall_s']:.1f} |"
        )
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {
                    "concurrency": concurrency,
                    "size": args.size,
                    "model": args.model,
                    "server_args": args.server_arg,
                    "rounds": results,
                },
                indent=1,
            )
        )
    failures = sum(r["reset"] + r["closed"] + r["timeout"] + r["other"] for r in results)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
