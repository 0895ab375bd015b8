#!/usr/bin/env bash
# Issue 10.5's memory bound, checked on the release binary: credgate's peak RSS stays under 64 MiB while a 1 GiB
# file goes through the one-call WriftAI upload (PUT /credgate/v1/wriftai/files/{name}): with Content-Length the
# parts stream through as the client sends them (the client is read only as fast as they go up); chunked, the file
# is held in an encrypted spool file, never whole in memory, and parts are read back from it a few at a time.
#   scripts/wriftai-upload-memory.sh [path/to/credgate]
#   (default: the binary built as the Dockerfile builds it, scripts/shipped-build.sh; built first if missing)
# Starts a small WriftAI stand-in (Python, two ports: the API with its bearer check, and the storage its presigned
# part URLs point at, which refuses an Authorization header and checks each part's exact length) and `credgate
# serve` with the endpoint configured; sends a 1 GiB PDF with curl -T (Content-Length) and again chunked; checks
# that every part arrived (sha256 per part, in order); reads credgate's peak RSS (VmHWM, the kernel's high-water
# mark). Prints the figures and `wriftai-upload-memory: N passed, M failed`. SIZE_MIB and PART_MIB change the sizes.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LIMIT_KIB=$((64 * 1024))
SIZE_MIB=${SIZE_MIB:-1024}
PART_MIB=${PART_MIB:-8}
# shellcheck source=scripts/lib.sh
source "$ROOT/scripts/lib.sh"
BIN=${1:-}
[[ -n $BIN ]] || BIN=$(shipped_binary "$ROOT") || exit 1
start_work
kib() { awk -v k="$1" '$1 == k":" { print $2 }' "/proc/$2/status"; }

[[ -x $BIN ]] || { echo "no binary at $BIN (build it: scripts/shipped-build.sh)"; exit 1; }
LINKAGE=$(linkage "$BIN")
echo "wriftai-upload-memory: $BIN ($(du -h "$BIN" | cut -f1), $LINKAGE), ${SIZE_MIB} MiB uploads in ${PART_MIB} MiB parts, bound $((LIMIT_KIB / 1024)) MiB"

TOKEN="wrift-mem-$RANDOM$RANDOM"
API_PORT=$(free_port)
STORAGE_PORT=$(free_port)
cat >"$WORK/fake_wriftai.py" <<'PY'
import hashlib, json, sys, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

api_port, storage_port, token, part_size = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
lock = threading.Lock()
uploads = {}  # id -> {"size", "mime", "parts": {index: (etag, sha256)}, "done"}

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *args): pass
    def answer(self, status, obj=None, headers=()):
        body = b"" if obj is None else json.dumps(obj).encode()
        self.send_response(status)
        for k, v in headers: self.send_header(k, v)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def body(self):
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n)

class API(Handler):
    def do_POST(self):
        data = json.loads(self.body() or b"{}")
        if self.headers.get("Authorization") != "Bearer " + token:
            return self.answer(401, {"detail": "Invalid token."})
        parts = self.path.strip("/").split("/")
        if parts == ["v1", "uploads"]:
            size, mime = data["size"], data["mime_type"]
            with lock:
                uid = "upl_%d" % (len(uploads) + 1)
                uploads[uid] = {"size": size, "mime": mime, "parts": {}, "done": False}
            count = (size + part_size - 1) // part_size
            urls = ["http://127.0.0.1:%d/parts/%s/%d?X-Signature=s%d" % (storage_port, uid, i, i) for i in range(count)]
            return self.answer(201, {"id": uid, "urls": urls, "part_size": part_size})
        if len(parts) == 4 and parts[:2] == ["v1", "uploads"] and parts[3] == "complete":
            with lock:
                up = uploads.get(parts[2])
                count = (up["size"] + part_size - 1) // part_size
                want = [up["parts"].get(i, ("", ""))[0] for i in range(count)]
                if data.get("etags") != want:
                    return self.answer(400, {"detail": "etags do not match the parts"})
                up["done"] = True
            return self.answer(200, {"download_url": "http://127.0.0.1:%d/files/%s?X-Signature=dl" % (storage_port, parts[2])})
        self.answer(404, {"detail": "Not found."})

class Storage(Handler):
    def do_PUT(self):
        if "Authorization" in self.headers:
            self.body()
            return self.answer(403, {"detail": "a presigned URL takes no Authorization header"})
        parts = self.path.split("?")[0].strip("/").split("/")
        uid, index = parts[1], int(parts[2])
        up = uploads[uid]
        want = min(part_size, up["size"] - index * part_size)
        n = int(self.headers.get("Content-Length", "-1"))
        if n != want or self.headers.get("Content-Type") != up["mime"]:
            self.body()
            return self.answer(403, {"detail": "SignatureDoesNotMatch"})
        md5, sha = hashlib.md5(), hashlib.sha256()
        left = n
        while left > 0:
            chunk = self.rfile.read(min(left, 1 << 20))
            if not chunk: return
            md5.update(chunk); sha.update(chunk); left -= len(chunk)
        etag = '"%s"' % md5.hexdigest()
        with lock: up["parts"][index] = (etag, sha.hexdigest())
        self.answer(200, None, [("ETag", etag)])
    def do_GET(self):
        parts = self.path.strip("/").split("/")
        if parts[0] == "debug":
            up = uploads[parts[1]]
            count = (up["size"] + part_size - 1) // part_size
            return self.answer(200, {"done": up["done"], "parts": [up["parts"].get(i, ("", ""))[1] for i in range(count)]})
        self.answer(404, {})

for port, cls in ((api_port, API), (storage_port, Storage)):
    server = ThreadingHTTPServer(("127.0.0.1", port), cls)
    threading.Thread(target=server.serve_forever, daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
PY
python3 "$WORK/fake_wriftai.py" "$API_PORT" "$STORAGE_PORT" "$TOKEN" $((PART_MIB * 1024 * 1024)) >"$WORK/fake.log" 2>&1 &
PIDS+=($!)
wait_up "http://127.0.0.1:$STORAGE_PORT/" "${PIDS[0]}" 30 || { cat "$WORK/fake.log"; exit 1; }

cat >"$WORK/wriftai.yaml" <<YAML
listen:
  host: 127.0.0.1
  port: 8081
upstreams:
  wriftai:
    url: http://127.0.0.1:$API_PORT
credentials:
  wriftai_token:
    kind: api_key
    header: Authorization
    value: Bearer \${WRIFTAI_ACCESS_TOKEN}
routes:
  - name: wriftai-api
    path: /v1/**
    upstream: wriftai
    credentials: [wriftai_token]
    max_body_bytes: 2GiB
endpoints:
  wriftai_upload:
    flow: three_step
    path: /v1/uploads
    part_concurrency: 4
    part_retries: 2
YAML
PORT=$(free_port)
env -i PATH="$PATH" HOME="$WORK" WRIFTAI_ACCESS_TOKEN=$TOKEN TMPDIR="$WORK" \
    "$BIN" serve --config "$WORK/wriftai.yaml" --port "$PORT" --log-level warning >"$WORK/credgate.log" 2>&1 &
GATEWAY_PID=$!
PIDS+=($GATEWAY_PID)
BASE="http://127.0.0.1:$PORT"
wait_up "$BASE/credgate/healthz" "$GATEWAY_PID" 30 || { cat "$WORK/credgate.log"; exit 1; }
echo "  credgate pid $GATEWAY_PID at $BASE; RSS at rest $(( $(kib VmRSS "$GATEWAY_PID") / 1024 )) MiB"

FILE="$WORK/report.pdf"
{ printf '%%PDF-1.7\n'; head -c $((SIZE_MIB * 1024 * 1024 - 9)) /dev/urandom; } >"$FILE"
WANT=$(python3 - "$FILE" $((PART_MIB * 1024 * 1024)) <<'PY'
import hashlib, json, sys
out = []
with open(sys.argv[1], "rb") as f:
    while True:
        part = f.read(int(sys.argv[2]))
        if not part: break
        out.append(hashlib.sha256(part).hexdigest())
print(json.dumps(out))
PY
)

upload() { # label, curl arguments...
    local label=$1
    shift
    local started answer id got
    started=$(date +%s%N)
    answer=$(curl -sS --max-time 600 "$@") || { fail "$label: curl failed"; cp "$WORK/credgate.log" "${CRASH_LOG:-/dev/null}" 2>/dev/null; tail -20 "$WORK/credgate.log"; return; }
    id=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])' <<<"$answer" 2>/dev/null || true)
    [[ -n $id ]] || { fail "$label: no upload id in the answer: ${answer:0:300}"; cp "$WORK/credgate.log" "${CRASH_LOG:-/dev/null}" 2>/dev/null; return; }
    got=$(curl -sS "http://127.0.0.1:$STORAGE_PORT/debug/$id" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps(d["parts"]) if d["done"] else "not completed")')
    if [[ $got == "$WANT" ]]; then
        pass "$label: every part arrived (sha256 per part) and the upload completed, in $(( ($(date +%s%N) - started) / 1000000 )) ms"
    else
        fail "$label: the stored parts do not match the file (${got:0:200})"
    fi
}
upload "curl -T (Content-Length)" -T "$FILE" "$BASE/credgate/v1/wriftai/files/report.pdf"
upload "curl -T, chunked" -T "$FILE" -H "Transfer-Encoding: chunked" "$BASE/credgate/v1/wriftai/files/report.pdf"

PEAK=$(kib VmHWM "$GATEWAY_PID")
ANON=$(kib RssAnon "$GATEWAY_PID")
echo "  credgate peak RSS (VmHWM) $((PEAK / 1024)) MiB ($PEAK KiB); RssAnon now $((ANON / 1024)) MiB"
if ((PEAK < LIMIT_KIB)); then
    pass "peak RSS $((PEAK / 1024)) MiB < $((LIMIT_KIB / 1024)) MiB during two ${SIZE_MIB} MiB uploads"
else
    fail "peak RSS $((PEAK / 1024)) MiB is over $((LIMIT_KIB / 1024)) MiB"
fi
LEFT=$(find "$WORK" -maxdepth 1 -type f ! -name '*.log' ! -name '*.yaml' ! -name '*.py' ! -name 'report.pdf' | wc -l)
if ((LEFT == 0)); then pass "no spool file left in TMPDIR"; else fail "$LEFT files left in TMPDIR"; fi
if grep -q "$TOKEN" "$WORK/credgate.log"; then fail "the token appears in credgate's log"; else pass "no token in credgate's log"; fi
echo "wriftai-upload-memory: $PASSED passed, $FAILED failed"
((FAILED == 0))
