"""Runs the unmodified wriftai SDK (0.34.0) against a WriftAI base URL: credgate's, or the sandbox's own.

With an SDK older than 0.30 (0.28: no `uploads`, no streams), the one-step upload (`POST /files/urls`, one PUT) and
polled predictions are checked instead of the three-step upload and the streams.

Environment: WRIFTAI_API_BASE_URL = credgate's address + /v1 (or the sandbox's), WRIFTAI_ACCESS_TOKEN = a placeholder
(credgate strips it and adds the real one) or the sandbox's token, SANDBOX_URL = the sandbox's own address (no /v1,
for its /sandbox/ controls and counters, which need no token).
Prints 'wriftai: N passed, M failed' and exits non-zero on any failure.
"""
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import urllib.request

import importlib.metadata

import wriftai
from wriftai import Client

passed = 0
failed = 0
SANDBOX = os.environ["SANDBOX_URL"].rstrip("/")


def check(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   {name}")
    else:
        failed += 1
        print(f"FAIL {name} {detail}")


def attempt(name, function):
    """Runs one group of checks; an exception is one failure, and the next group still runs."""
    try:
        function()
    except Exception as e:  # noqa: BLE001
        check(name, False, repr(e))


def control(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else (b"" if method in ("POST", "DELETE") else None)
    request = urllib.request.Request(SANDBOX + path, method=method, data=data,
                                     headers={"Content-Type": "application/json"} if body is not None else {})
    with urllib.request.urlopen(request, timeout=10) as r:
        text = r.read()
        return json.loads(text) if text else None


def counters():
    return control("GET", "/sandbox/counters")


client = Client()
VERSION = importlib.metadata.version("wriftai")
ONE_STEP = not hasattr(client, "uploads")  # SDK 0.28: files.upload(content, resource, name) via /files/urls
File = getattr(wriftai, "File", None)


def user_and_models():
    user = client.authenticated_user.get()
    check("authenticated_user.get() is the sandbox user", user.get("name") == "sandbox", repr(user))
    names, pages, cursor = [], 0, None
    while True:
        options = {"page_size": 2}
        if cursor:
            options["cursor"] = cursor
        page = client.models.list(pagination_options=options)
        pages += 1
        names += [m["name"] for m in page.items]
        cursor = page.next_cursor
        if not cursor or pages > 10:
            break
    check(f"models.list() followed through {pages} pages of 2 returns every model", pages == 3 and len(names) == 5 and len(set(names)) == 5,
          repr(names))
    model = client.models.get("sandbox/echo")
    check("models.get('sandbox/echo') has its latest version", (model.get("latest_version") or {}).get("number") == 1)


def rate_limit():
    # One 429 on /v1/models with x-ratelimit-reset one second ahead: the SDK waits until then and retries.
    before = counters()["rate_limited"]
    control("POST", "/sandbox/rate-limit", {"count": 1, "path": "/v1/models", "reset_seconds": 2})
    start = time.monotonic()
    page = client.models.list(pagination_options={"page_size": 5})
    waited = time.monotonic() - start
    after = counters()["rate_limited"]
    check(f"a 429 with x-ratelimit-reset is retried by the SDK after {waited:.1f} s", len(page.items) == 5 and after == before + 1 and waited >= 0.5,
          f"rate_limited {before} -> {after}, waited {waited:.2f} s")


def upload():
    control("POST", "/sandbox/urls", {"part_size": 64 * 1024})
    before = counters()
    content = b"%PDF-1.7\n" + os.urandom(200_000)
    result = client.files.upload(File(content=content, mime_type="application/pdf"))
    url = result["download_url"]
    after = counters()
    parts = after["part_puts"] - before["part_puts"]
    check(f"files.upload() put {parts} parts straight to the sandbox's storage and completed once",
          parts == 4 and after["completes"] - before["completes"] == 1, json.dumps(after))
    check("the download URL is the storage's signed URL, not credgate's", url.startswith(SANDBOX + "/sandbox-s3/"), url)
    with urllib.request.urlopen(url, timeout=10) as r:
        check("the download URL serves the uploaded bytes", r.read() == content and r.headers["Content-Type"] == "application/pdf")
    puts = [r for r in control("GET", "/sandbox/requests") if r["method"] == "PUT"][-4:]
    check("no part PUT carried an Authorization header",
          len(puts) == 4 and all(not any(h[0].lower() == "authorization" for h in r["headers"]) for r in puts))

    async def from_disk():
        with tempfile.NamedTemporaryFile(suffix=".txt") as f:
            f.write(b"hello from a file on disk\n" * 10_000)
            f.flush()
            return await Client().files.async_upload(File(content=__import__("pathlib").Path(f.name)))
    result = asyncio.run(from_disk())
    with urllib.request.urlopen(result["download_url"], timeout=10) as r:
        check("files.async_upload() of a path (text/plain, several parts) round-trips",
              r.read() == b"hello from a file on disk\n" * 10_000 and r.headers["Content-Type"] == "text/plain")


def predictions():
    control("POST", "/sandbox/stream", {"events": 4, "interval_ms": 300})
    document = File(content=b"%PDF-1.7 input", mime_type="application/pdf")
    prediction = client.predictions.create(model="sandbox/echo", input={"prompt": "hello", "document": document})
    check("predictions.create() uploads the input file first and sends its URL",
          str(prediction["input"].get("document", "")).startswith(SANDBOX + "/sandbox-s3/"), repr(prediction["input"]))
    arrivals, events = [], []
    for event in client.predictions.stream(prediction["id"]):
        arrivals.append(time.monotonic())
        events.append(event["event"])
    check("predictions.stream() reads init, 4 outputs and done", events == ["init"] + ["output"] * 4 + ["done"], repr(events))
    outputs = [t for t, e in zip(arrivals, events) if e == "output"]
    gaps = [b - a for a, b in zip(outputs, outputs[1:])]
    check(f"stream events arrive spaced (gaps {', '.join(f'{g:.2f}' for g in gaps)} s), not in one batch",
          len(gaps) == 3 and min(gaps) >= 0.2, repr(gaps))

    listed = client.predictions.list(pagination_options={"page_size": 50})
    check("predictions.list() shows it", any(p["id"] == prediction["id"] for p in listed.items))
    check("predictions.get() says succeeded", client.predictions.get(prediction["id"])["status"] == "succeeded")

    done = client.predictions.create(model="sandbox/echo", input={"n": 1}, wait=True)
    check("predictions.create(wait=True) answers the finished prediction", done["status"] == "succeeded", repr(done))

    with contextlib.closing(client.predictions.create(model="sandbox/echo", input={"n": 2}, wait=True, stream=True)) as stream:
        names = [e["event"] for e in stream]
    check("predictions.create(wait=True, stream=True) streams from the create call", names == ["init"] + ["output"] * 4 + ["done"], repr(names))

    # A long pause with Prefer: wait=1: the server closes the idle stream, the SDK reconnects with after_id.
    control("POST", "/sandbox/stream", {"delays_ms": [100, 2500]})
    paused = client.predictions.create(model="sandbox/echo", input={"n": 3})
    opened = counters()["streams_opened"]
    names = [e["event"] for e in client.predictions.stream(paused["id"], wait=1)]
    reconnects = counters()["streams_opened"] - opened
    check(f"an idle-closed stream is resumed by the SDK ({reconnects} connections) without losing an event",
          names == ["init", "output", "output", "done"] and reconnects >= 2, repr(names))

    control("POST", "/sandbox/stream", {"events": 3, "interval_ms": 20000})
    slow = client.predictions.create(model="sandbox/echo", input={"n": 4})
    client.predictions.cancel(slow["id"])
    check("predictions.cancel() cancels", client.predictions.get(slow["id"])["status"] == "cancelled")
    control("POST", "/sandbox/stream", {"events": 3, "interval_ms": 100})


def one_step_upload():
    before = counters()
    content = b"%PDF-1.7\n" + os.urandom(50_000)
    url = client.files.upload(content, "prediction", name="report.pdf")
    after = counters()
    check("files.upload() (one step) put the file straight to the sandbox's storage",
          after["single_puts"] - before["single_puts"] == 1 and url.startswith(SANDBOX + "/sandbox-s3/"), url)
    with urllib.request.urlopen(url, timeout=10) as r:
        check("its download URL serves the uploaded bytes", r.read() == content and r.headers["Content-Type"] == "application/pdf")
    put = [r for r in control("GET", "/sandbox/requests") if r["method"] == "PUT"][-1]
    check("the PUT carried no Authorization header", not any(h[0].lower() == "authorization" for h in put["headers"]))


def polled_predictions():
    control("POST", "/sandbox/stream", {"events": 2, "interval_ms": 300})
    done = client.predictions.create(model="sandbox/echo", input={"n": 1}, wait=True)
    check("predictions.create(wait=True) polls until succeeded", done["status"] == "succeeded", repr(done))
    listed = client.predictions.list()
    check("predictions.list() shows it", any(p["id"] == done["id"] for p in listed.items))
    control("POST", "/sandbox/stream", {"events": 3, "interval_ms": 20000})
    slow = client.predictions.create(model="sandbox/echo", input={"n": 2})
    client.predictions.cancel(slow["id"])
    check("predictions.cancel() cancels", client.predictions.get(slow["id"])["status"] == "cancelled")
    control("POST", "/sandbox/stream", {"events": 3, "interval_ms": 100})


print(f"wriftai {VERSION} at {os.environ.get('WRIFTAI_API_BASE_URL')}")
groups = [("user and models", user_and_models), ("rate limit", rate_limit)]
# SDK 0.28's pages also have next_url/previous_url (and 0.34's must not): the sandbox serves either shape.
control("POST", "/sandbox/pages", {"urls": ONE_STEP})
if ONE_STEP:
    groups += [("one-step upload", one_step_upload), ("predictions", polled_predictions)]
else:
    groups += [("upload", upload), ("predictions", predictions)]
for name, group in groups:
    attempt(name, group)
control("POST", "/sandbox/pages", {"urls": False})
print(f"wriftai: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
