#!/usr/bin/env python3
"""Sends randomly broken HTTP requests to a running credgate and fails if it dies or stops answering.

The libFuzzer targets in Fuzz/ take one parser at a time; this takes the whole data path through real sockets:
SwiftNIO's HTTP parser, the per-connection state machine, pipelining, chunked bodies, the filters and the
sandbox platform behind them. It starts `credgate serve --sandbox --port 0` (the gateway with the built-in
Assured emulator, Config/credgate.yaml), then, for a bounded time and number of requests, sends mutated
versions of valid requests (bit flips, odd bytes, truncations, duplicated or removed CRLFs, odd headers,
broken chunked framing, pipelined batches) to 127.0.0.1 only. After each one it checks that the process is
alive and that `GET /credgate/healthz` on a new connection answers within 5 s. Any failure exits 1 and saves
the request that did it (and the ones just before it) under --out.

    scripts/fuzz-network.py .build/debug/credgate
    scripts/fuzz-network.py .build/release/credgate --seconds 300 --seed 42

The run is reproducible from its seed (printed first) up to timing: a request's answer is read until the
gateway closes or goes quiet, so what a pipelined batch gets back can vary. Standard library only.
"""
import argparse
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOST = "127.0.0.1"  # loopback only: nothing else is ever a target
HEALTH_TIMEOUT = 5.0  # a gateway that takes longer to answer /credgate/healthz is hung
REPO = Path(__file__).resolve().parent.parent

# ------------------------------------------------------------------------------------------------ valid requests
PDF = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(40)
BOUNDARY = b"8f3c2a1b9d7e6f5a4b3c2d1e0f9a8b7c"


def multipart(filename=b"license.pdf", content=PDF, name=b"license.pdf"):
    b = BOUNDARY
    return (b"--" + b + b'\r\nContent-Disposition: form-data; name="name"\r\n\r\n' + name + b"\r\n"
            + b"--" + b + b'\r\nContent-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n'
            + b"Content-Type: application/pdf\r\n\r\n" + content + b"\r\n--" + b + b"--\r\n")


def request(method, target, headers=(), body=None, chunks=None, version=b"HTTP/1.1"):
    """A request as bytes: Content-Length for a body, or chunked framing for `chunks`."""
    lines = [method + b" " + target + b" " + version, b"Host: 127.0.0.1", b"User-Agent: credgate-fuzz-network"]
    lines += list(headers)
    payload = b""
    if chunks is not None:
        lines.append(b"Transfer-Encoding: chunked")
        payload = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    elif body is not None:
        lines.append(b"Content-Length: %d" % len(body))
        payload = body
    return b"\r\n".join(lines) + b"\r\n\r\n" + payload


def split(data, pieces):
    step = max(1, len(data) // pieces)
    return [data[i:i + step] for i in range(0, len(data), step)]


def valid_requests():
    json_headers = [b"Content-Type: application/json", b"Accept: application/json"]
    mp = [b"Content-Type: multipart/form-data; boundary=" + BOUNDARY]
    ssn = b'{"ssn": "123-45-6789"}'
    return [
        request(b"GET", b"/api/v1/users/providers-list/", [b"Accept: */*"]),
        request(b"GET", b"/api/v1/users/providers-list/?page=2&page_size=50", [b"X-Request-ID: fuzz-1"]),
        request(b"POST", b"/api/v1/users/provider-documents/", json_headers, b'{"document_type": "license", "file": "s3://b/k.pdf"}'),
        request(b"POST", b"/api/v1/users/login/", json_headers, b'{"email": "a@example.com", "password": "x", "remember": true}'),
        request(b"PATCH", b"/api/v1/users/retrieve-update-provider-ssn-sym-encrypted/1/", json_headers, ssn),
        request(b"PATCH", b"/api/v1/users/retrieve-update-provider-ssn-sym-encrypted/1/", json_headers, chunks=split(ssn, 3)),
        request(b"POST", b"/api/v1/files/handle/", mp, multipart()),
        request(b"POST", b"/api/v1/files/handle/", mp, chunks=split(multipart(b"scan.png", PNG, b"scan.png"), 4)),
        request(b"POST", b"/api/v1/files/handle/", mp + [b"Expect: 100-continue"], multipart()),
        request(b"POST", b"/api/v1/files/presign-s3-url/presign_s3_url/", json_headers, b'{"s3_url": "s3://assured-uploads/a/license.pdf"}'),
        request(b"PUT", b"/credgate/v1/files/license.pdf", [b"Content-Type: application/pdf"], PDF),
        request(b"PUT", b"/credgate/v1/files/scan%20copy.png", [], chunks=split(PNG, 3)),
        request(b"GET", b"/credgate/v1/files/download?s3_url=s3%3A%2F%2Fassured-uploads%2Fa%2Flicense.pdf"),
        request(b"GET", b"/credgate/status"),
        request(b"HEAD", b"/credgate/healthz"),
        request(b"DELETE", b"/credgate/v1/cache/presign"),
        request(b"GET", b"/api/v1/users/providers-list/", [b"Connection: close"], version=b"HTTP/1.0"),
    ]


# ------------------------------------------------------------------------------------------------ mutations
ODD_BYTES = [0x00, 0x01, 0x08, 0x09, 0x0A, 0x0D, 0x20, 0x22, 0x25, 0x2F, 0x3A, 0x3B, 0x5C, 0x7F, 0x80, 0xC0, 0xFF]
ODD_HEADERS = [
    b"Content-Length: 5", b"Content-Length: -1", b"Content-Length: 99999999999999999999", b"Content-Length: 1, 1",
    b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip, chunked", b"Transfer-Encoding: identity",
    b"Connection: close", b"Connection: keep-alive, host, x-api-key", b"Connection: upgrade", b"Upgrade: h2c",
    b"Expect: 100-continue", b"Expect: fancy", b"Host: evil.example", b"Host: [::1]:80", b"Host:", b"X-\x80\xff: 1",
    b"X-Request-ID: " + b"a" * 200, b"X-Request-ID: \x01\x7f", b"Authorization: Bearer x.y.z", b"x-api-key: stolen",
    b"Content-Type: multipart/form-data; boundary=", b"Content-Type: multipart/form-data; boundary=\"" + b"x" * 80 + b"\"",
    b" folded: continuation", b"\tobs-fold", b"NoColon", b": empty-name", b"X-Long: " + b"v" * 9000,
    b"X-Forwarded-For: 1.2.3.4", b"TE: trailers", b"Trailer: X-Checksum", b"Proxy-Connection: keep-alive",
]
ODD_TARGETS = [
    b"/api/%2e%2e/credgate/status", b"/api/../credgate/healthz", b"/api/..%2F..%2Fetc%2Fpasswd", b"//api//v1",
    b"/api/v1/users/providers-list/%00", b"/api/\\..\\x", b"*", b"http://127.0.0.1/api/", b"127.0.0.1:443",
    b"/credgate/v1/files/%ZZ.pdf", b"/credgate/v1/files/..%2Fx.pdf", b"/credgate/v1/files/" + b"a" * 300 + b".pdf",
    b"/api/" + b"x" * 5000, b"/api/v1/users/providers-list/?" + b"&" * 500, b"/%C0%AE%C0%AE/", b"/api/v1/files/handle/#frag",
]
ODD_METHODS = [b"CONNECT", b"TRACE", b"OPTIONS", b"BREW", b"G\x00T", b"get", b"PRI", b"", b"POST POST"]


def flip_bits(r, data):
    data = bytearray(data)
    for _ in range(r.randint(1, 8)):
        i = r.randrange(len(data))
        data[i] ^= 1 << r.randrange(8)
    return bytes(data)


def odd_byte(r, data):
    data = bytearray(data)
    for _ in range(r.randint(1, 4)):
        data[r.randrange(len(data))] = r.choice(ODD_BYTES)
    return bytes(data)


def insert_bytes(r, data):
    i = r.randrange(len(data) + 1)
    junk = bytes(r.choice(ODD_BYTES) if r.random() < 0.5 else r.randrange(256) for _ in range(r.randint(1, 16)))
    return data[:i] + junk + data[i:]


def truncate(r, data):
    return data[:r.randrange(len(data))]


def crlf(r, data):
    spots = [m.start() for m in re.finditer(b"\r\n", data)]
    if not spots:
        return data
    i = r.choice(spots)
    kind = r.randrange(5)
    if kind == 0:
        return data[:i] + data[i + 2:]  # removed
    if kind == 1:
        return data[:i] + b"\r\n\r\n" + data[i + 2:]  # duplicated: an early end of the head
    if kind == 2:
        return data[:i] + b"\n" + data[i + 2:]  # bare LF
    if kind == 3:
        return data[:i] + b"\r" + data[i + 2:]  # bare CR
    return data[:i] + b"\r\n" * r.randint(2, 50) + data[i + 2:]


def add_header(r, data):
    end = data.find(b"\r\n")
    if end < 0:
        return data
    return data[:end + 2] + r.choice(ODD_HEADERS) + b"\r\n" + data[end + 2:]


def remove_header(r, data):
    head_end = data.find(b"\r\n\r\n")
    lines = [m.start() for m in re.finditer(b"\r\n", data[:head_end if head_end >= 0 else len(data)])]
    if len(lines) < 2:
        return data
    k = r.randrange(len(lines) - 1)
    return data[:lines[k]] + data[lines[k + 1]:]


def replace_target(r, data):
    first = data.find(b" ")
    second = data.find(b" ", first + 1)
    if first < 0 or second < 0:
        return data
    return data[:first + 1] + r.choice(ODD_TARGETS) + data[second:]


def replace_method(r, data):
    first = data.find(b" ")
    return r.choice(ODD_METHODS) + data[max(first, 0):]


def break_chunks(r, data):
    """Chunk sizes that lie, chunk extensions, a missing last chunk, trailers."""
    if b"Transfer-Encoding: chunked" not in data:
        return data
    head_end = data.find(b"\r\n\r\n") + 4
    head, body = data[:head_end], data[head_end:]
    kind = r.randrange(6)
    if kind == 0:
        body = re.sub(rb"^[0-9a-f]+\r\n", lambda m: b"%x\r\n" % r.randrange(1 << 20), body, count=1)
    elif kind == 1:
        body = body.replace(b"\r\n", b";ext=\"v\"\r\n", 1)
    elif kind == 2:
        body = body[:-5] if body.endswith(b"0\r\n\r\n") else body
    elif kind == 3:
        body = body[:-2] + b"X-Checksum: 1\r\n\r\n"
    elif kind == 4:
        body = b"fffffffffffffffff\r\n" + body
    else:
        body = b"-1\r\n" + body
    return head + body


def duplicate_slice(r, data):
    i = r.randrange(len(data))
    j = min(len(data), i + r.randint(1, 64))
    return data[:j] + data[i:j] * r.randint(1, 8) + data[j:]


def lie_about_length(r, data):
    m = re.search(rb"Content-Length: (\d+)", data)
    if not m:
        return data
    n = int(m.group(1))
    return data[:m.start(1)] + str(r.choice([0, n - 1, n + 1, n * 2, 1 << 31])).encode() + data[m.end(1):]


MUTATIONS = [flip_bits, odd_byte, insert_bytes, truncate, crlf, crlf, add_header, add_header, remove_header,
             replace_target, replace_method, break_chunks, break_chunks, duplicate_slice, lie_about_length]


def mutated(r, bases):
    """One test case: a list of writes (a pipelined batch is several requests in one write, or split)."""
    count = 1 if r.random() < 0.8 else r.randint(2, 4)
    parts = []
    for _ in range(count):
        data = r.choice(bases)
        if r.random() < 0.9:
            for _ in range(r.randint(1, 3)):
                if data:
                    data = r.choice(MUTATIONS)(r, data)
        parts.append(data)
    payload = b"".join(parts)
    if payload and r.random() < 0.2:
        # Sent in pieces, so the gateway sees the request in several reads.
        cuts = sorted(r.sample(range(1, len(payload) + 1), min(len(payload), r.randint(1, 4))))
        return [payload[a:b] for a, b in zip([0] + cuts, cuts + [len(payload)]) if b > a]
    return [payload]


# ------------------------------------------------------------------------------------------------ the gateway
class Gateway:
    def __init__(self, binary, config, log_path):
        self.log_path = log_path
        self.log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [binary, "serve", "--sandbox", "--port", "0", "--host", HOST, "--config", str(config), "--log-level", "warning"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO, start_new_session=True)
        self.port = self._wait_for_port()

    def _wait_for_port(self):
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            m = re.search(rb"listening on http://[^\s:]+:(\d+)", Path(self.log_path).read_bytes())
            if m:
                return int(m.group(1))
            if self.process.poll() is not None:
                raise SystemExit(f"fuzz-network: credgate exited with {self.process.returncode} before listening:\n"
                                 + self.tail())
            time.sleep(0.1)
        self.stop()
        raise SystemExit("fuzz-network: credgate did not print 'listening on' within 60 s:\n" + self.tail())

    def tail(self, lines=30):
        """The log's last lines, or from a crash report on (Swift's backtracer writes one) when there is one."""
        text = Path(self.log_path).read_bytes().decode("utf-8", "replace").splitlines()
        crash = next((i for i, line in enumerate(text) if re.search(r"Fatal error|Program crashed", line)), None)
        shown = text[crash:crash + 40] if crash is not None else text[-lines:]
        return "\n".join("    " + line for line in shown)

    def crash_reported(self):
        return re.search(rb"Fatal error|Program crashed", Path(self.log_path).read_bytes()) is not None

    def wait_for_exit(self, seconds):
        """Whether the process exits within `seconds`: a crashing Swift process is still alive while its
        backtracer writes the report."""
        try:
            self.process.wait(seconds)
            return True
        except subprocess.TimeoutExpired:
            return False

    def died(self):
        return self.process.poll() is not None

    def exit_description(self):
        code = self.process.returncode
        if code is not None and code < 0:
            return f"killed by signal {signal.Signals(-code).name}"
        return f"exited with status {code}"

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


def send(port, writes, read_timeout):
    """Writes the test case on a new connection and reads what comes back until the gateway closes or goes
    quiet (`read_timeout` for the first byte, then 50 ms: a keep-alive connection stays open after its
    answer); then closes it, and returns the first answer's status code. The answer is not judged (a 400 is as
    good as a 200), only that the gateway lives on; closing before it has answered is what an impatient client
    does too."""
    first = b""
    with socket.create_connection((HOST, port), timeout=read_timeout) as s:
        try:
            for data in writes:
                s.sendall(data)
            received = 0
            while received < 4 << 20:
                chunk = s.recv(65536)
                if not chunk:
                    break
                if len(first) < 12:
                    first += chunk[:12]
                received += len(chunk)
                s.settimeout(0.05)
        except OSError:  # a timeout, or the gateway reset the connection
            pass
    m = re.match(rb"HTTP/1\.[01] (\d{3})", first)
    return m.group(1).decode() if m else ("no answer" if not first else "not HTTP")


def healthy(port):
    """Whether GET /credgate/healthz answers with a status line within HEALTH_TIMEOUT."""
    deadline = time.monotonic() + HEALTH_TIMEOUT
    try:
        with socket.create_connection((HOST, port), timeout=HEALTH_TIMEOUT) as s:
            s.sendall(b"GET /credgate/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            answer = b""
            while b"\r\n" not in answer:
                s.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = s.recv(4096)
                if not chunk:
                    break
                answer += chunk
            return answer.startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def save(out, seed, index, history, reason, gateway):
    out.mkdir(parents=True, exist_ok=True)
    stem = f"seed{seed}-request{index}"
    culprit = out / f"{stem}.bin"
    culprit.write_bytes(b"".join(history[-1]))
    # The requests just before it too: a hang can be the sum of several.
    with open(out / f"{stem}-last{len(history)}.txt", "w") as f:
        f.write(f"# {reason}\n# seed {seed}; the last {len(history)} test cases, oldest first, each write as a Python bytes literal\n")
        for case in history:
            f.write(repr(case) + "\n")
    (out / f"{stem}-gateway.log").write_text(gateway.tail(200))
    return culprit


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("binary", help="the credgate executable, e.g. .build/debug/credgate")
    parser.add_argument("--seconds", type=float, default=60, help="how long to send requests (default 60)")
    parser.add_argument("--max-requests", type=int, default=20000, help="at most this many test cases (default 20000)")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: from the clock, printed)")
    parser.add_argument("--out", type=Path, default=REPO / ".build" / "fuzz-network",
                        help="where a failing request is saved (default .build/fuzz-network)")
    parser.add_argument("--config", type=Path, default=REPO / "Config" / "credgate.yaml",
                        help="the gateway's configuration (default Config/credgate.yaml)")
    parser.add_argument("--read-timeout", type=float, default=0.5,
                        help="seconds of silence after which an answer is taken as complete (default 0.5)")
    args = parser.parse_args()

    seed = args.seed if args.seed is not None else int(time.time() * 1000) % 1_000_000_007
    r = random.Random(seed)
    print(f"fuzz-network: seed {seed} (replay with --seed {seed}), up to {args.seconds:g}s / {args.max_requests} requests")
    sys.stdout.flush()
    log_path = Path(tempfile.mkstemp(prefix="credgate-fuzz-network-", suffix=".log")[1])
    gateway = Gateway(os.path.abspath(args.binary), args.config, log_path)
    print(f"fuzz-network: credgate listening on {HOST}:{gateway.port} (pid {gateway.process.pid}, log {log_path})")
    bases = valid_requests()
    history = []
    statuses = {}
    sent = 0
    failure = None
    start = time.monotonic()
    try:
        if not healthy(gateway.port):
            failure = "the gateway did not answer GET /credgate/healthz before any mutated request"
        while failure is None and sent < args.max_requests and time.monotonic() - start < args.seconds:
            case = mutated(r, bases)
            history = (history + [case])[-20:]
            sent += 1
            try:
                status = send(gateway.port, case, args.read_timeout)
                statuses[status] = statuses.get(status, 0) + 1
            except OSError as e:  # refused: the listener is gone
                failure = f"request {sent}: could not connect ({e})"
            if failure is None and gateway.died():
                failure = f"request {sent}: credgate {gateway.exit_description()}"
            elif failure is None and not healthy(gateway.port):
                if gateway.wait_for_exit(30):
                    failure = f"request {sent}: credgate {gateway.exit_description()}"
                elif gateway.crash_reported():
                    failure = f"request {sent}: credgate crashed (its backtracer is still writing the report)"
                else:
                    failure = f"request {sent}: GET /credgate/healthz got no 200 within {HEALTH_TIMEOUT:g}s (a hang)"
            if sent % 500 == 0:
                print(f"fuzz-network: {sent} requests, {time.monotonic() - start:.0f}s")
                sys.stdout.flush()
    finally:
        elapsed = time.monotonic() - start
        if failure:
            culprit = save(args.out, seed, sent, history, failure, gateway)
            gateway.stop()
            print(f"fuzz-network: FAILED after {sent} requests in {elapsed:.1f}s (seed {seed}): {failure}")
            print(f"fuzz-network: the request: {culprit} (and the {len(history)} before it, and the gateway's log, beside it)")
            print("fuzz-network: the gateway's last lines:\n" + gateway.tail())
        else:
            gateway.stop()
    if failure:
        return 1
    print(f"fuzz-network: {sent} requests in {elapsed:.1f}s (seed {seed}): credgate stayed up and answered /credgate/healthz after each")
    common = sorted(statuses.items(), key=lambda kv: -kv[1])
    print("fuzz-network: first answers: " + ", ".join(f"{k} x{v}" for k, v in common))
    log_path.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
