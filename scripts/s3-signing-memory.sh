#!/usr/bin/env bash
# Memory of the S3 signing route with 1 GiB each way: credgate's peak RSS (VmHWM) must stay under 64 MiB.
#   scripts/s3-signing-memory.sh [path/to/credgate]
#   (default: the binary built as the Dockerfile builds it, scripts/shipped-build.sh; built first if missing)
# Starts a Python upstream that reads and discards a PUT body and answers a GET with 1 GiB of zeros, credgate
# with Config/s3.yaml pointed at it, then curl -T a 1 GiB sparse file through the signing route (streamed as
# UNSIGNED-PAYLOAD) and downloads 1 GiB back. Prints the times and credgate's VmHWM; exits 1 over 64 MiB.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=${1:-}
if [[ -z $BIN ]]; then
    BIN=$(scripts/shipped-build.sh --bin-path 2>/dev/null || scripts/shipped-build.sh | tail -1) || exit 1
fi
TMP=$(mktemp -d)
UP=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
GW=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat >"$TMP/sink.py" <<'PY'
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_PUT(self):
        n = int(self.headers.get("content-length", 0)); got = 0
        while got < n:
            b = self.rfile.read(min(1 << 20, n - got))
            if not b: break
            got += len(b)
        body = f"received {got}, {self.headers.get('x-amz-content-sha256')}".encode()
        self.send_response(200); self.send_header("content-length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def do_GET(self):
        self.send_response(200); self.send_header("content-length", str(1 << 30)); self.end_headers()
        chunk = b"\0" * (1 << 20)
        for _ in range(1 << 10): self.wfile.write(chunk)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
PY
python3 "$TMP/sink.py" "$UP" & SINK=$!
python3 -c 'import socket, sys, time
for _ in range(100):
    try: socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close(); break
    except OSError: time.sleep(0.05)' "$UP"
env AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=example AWS_REGION=us-east-1 AWS_SESSION_TOKEN= S3_BUCKET=memory-test \
    S3_ENDPOINT_URL="http://127.0.0.1:$UP" "$BIN" serve --config Config/s3.yaml --port "$GW" --log-level warning >"$TMP/log" 2>&1 &
PID=$!
trap 'kill $PID $SINK 2>/dev/null || true; wait $PID $SINK 2>/dev/null || true; rm -rf "$TMP"' EXIT
for _ in $(seq 1 100); do grep -q 'listening on' "$TMP/log" && break; sleep 0.1; done
truncate -s 1G "$TMP/1g.bin"
START=$(date +%s.%N)
curl -fsS -T "$TMP/1g.bin" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "http://127.0.0.1:$GW/memory-test/big.bin"; echo
MID=$(date +%s.%N)
curl -fsS "http://127.0.0.1:$GW/memory-test/big.bin" -o /dev/null -w 'downloaded %{size_download} bytes\n'
END=$(date +%s.%N)
HWM=$(awk '/VmHWM/ {print $2}' "/proc/$PID/status")
printf 'up %.1f s, down %.1f s, credgate peak RSS %d KiB\n' "$(echo "$MID - $START" | bc)" "$(echo "$END - $MID" | bc)" "$HWM"
(( HWM < 65536 ))
