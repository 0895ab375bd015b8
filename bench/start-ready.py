#!/usr/bin/env python3
"""Time from start to ready of a credgate command, measured RUNS times (for bench/run.sh; prints one line).

    bench/start-ready.py --port PORT [--runs 5] -- /path/to/credgate serve --config ... --port PORT

Each run starts the command (its stdout and stderr to /dev/null, the environment inherited), then asks, as fast
as a loop can (a new connection every millisecond, from this process: no curl to fork), for
GET /credgate/healthz until it answers 200 (the process serves), then GET /credgate/readiness until it answers
200 (the config is loaded and every session credential holds a token: for the shipped config, the login against
the origin is done). Then SIGTERM, and the next run. The clock starts just before the process is forked.
Prints: `healthz MEDIAN_MS (min MIN, max MAX) readiness MEDIAN_MS (min MIN, max MAX) runs N` in milliseconds, and
exits 1 if any run did not get ready within 10 s.
"""
import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time


def status(port: int, path: str) -> int:
    """The status code of GET path on 127.0.0.1:port, or 0 when nothing answers yet."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            head = s.recv(64)
            parts = head.split(b" ", 2)
            return int(parts[1]) if len(parts) >= 2 and parts[0].startswith(b"HTTP/") else 0
    except (OSError, ValueError):
        return 0


def one_run(command: list[str], port: int) -> tuple[float, float]:
    start = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        healthz = readiness = None
        deadline = start + 10.0
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise SystemExit(f"start-ready: the command exited with {process.returncode} before it was ready")
            if healthz is None:
                if status(port, "/credgate/healthz") == 200:
                    healthz = time.monotonic() - start
                    continue
            elif status(port, "/credgate/readiness") == 200:
                readiness = time.monotonic() - start
                break
            time.sleep(0.001)
        if healthz is None or readiness is None:
            raise SystemExit("start-ready: not ready within 10 s")
        return healthz * 1000, readiness * 1000
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    healthz, readiness = [], []
    for _ in range(args.runs):
        h, r = one_run(command, args.port)
        healthz.append(h)
        readiness.append(r)
        time.sleep(0.2)
    fmt = lambda xs: f"{statistics.median(xs):.1f} (min {min(xs):.1f}, max {max(xs):.1f})"
    print(f"healthz {fmt(healthz)} readiness {fmt(readiness)} runs {args.runs}")


if __name__ == "__main__":
    main()
