#!/usr/bin/env bash
# S3 without keys in the app: boto3 (PyPI) and curl through credgate, against the S3 sandbox.
#   Tests/compat/run-s3.sh [path/to/credgate]
# Makes a venv in .build/s3-venv with boto3, starts `credgate serve --sandbox --config Config/s3.yaml --port 0`
# (the sandbox's S3 checks every SigV4 signature, header or presigned, and expiry), then:
#   - Tests/compat/s3_boto3_check.py: boto3 with dummy credentials and endpoint_url at credgate: put, get, list,
#     delete, a 20 MiB multipart upload downloaded back and compared, another bucket refused;
#   - curl: an upload link from POST /credgate/v1/s3/links, PUT with the returned headers; a download link and
#     GET /credgate/v1/s3/download/{key} (302, curl -L), both compared with what was uploaded; the upload link
#     with another Content-Type refused by S3 (403).
# Then the same against a second, independent S3, moto's server mode (PyPI moto[server]), with credgate started
# without --sandbox and pointed at it, for storage behaviour (moto checks no signatures: the sandbox and botocore's
# vectors do). S3_MOTO=0 skips it.
# Prints 's3-boto3: N passed, M failed' and 'curl links: ok' for each.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BIN=${1:-.build/debug/credgate}
VENV=${VENV:-.build/s3-venv}
CONFIG=${CONFIG:-Config/s3.yaml}

S3_MOTO=${S3_MOTO:-1}
if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c 'import boto3' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check boto3
fi
if [[ $S3_MOTO == 1 && ! -x $VENV/bin/moto_server ]]; then
    "$VENV/bin/pip" install --quiet --disable-pip-version-check 'moto[server]'
fi
echo "python: $("$VENV/bin/python" --version), boto3 $("$VENV/bin/python" -c 'import boto3; print(boto3.__version__)')"

LOG=$(mktemp)
TMP=$(mktemp -d)
MOTO_PID=
"$BIN" serve --sandbox --config "$CONFIG" --port 0 --log-level warning >"$LOG" 2>&1 &
PID=$!
trap 'kill $PID $MOTO_PID 2>/dev/null || true; wait $PID $MOTO_PID 2>/dev/null || true; rm -rf "$LOG" "$TMP"' EXIT
for _ in $(seq 1 100); do
    grep -q 'listening on' "$LOG" && break
    sleep 0.1
done
GATEWAY=$(grep -o 'listening on http://[0-9.:]*' "$LOG" | head -1 | sed 's/listening on //')
SANDBOX=$(grep -o "'s3' to the sandbox at http://[0-9.:]*" "$LOG" | head -1 | sed "s/.*sandbox at //")
if [[ -z $GATEWAY || -z $SANDBOX ]]; then
    echo "credgate did not start:"; cat "$LOG"; exit 1
fi
echo "credgate at $GATEWAY, S3 sandbox at $SANDBOX"
BUCKET=sandbox-bucket

# boto3 knows only dummy keys; credgate re-signs.
env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE \
    CREDGATE_URL="$GATEWAY" S3_BUCKET="$BUCKET" "$VENV/bin/python" Tests/compat/s3_boto3_check.py

json() { "$VENV/bin/python" -c "import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
# curl with links: the app never sees a key. $1: whether the store checks signatures (a wrong Content-Type: 403).
curl_links() {
head -c 3000000 /dev/urandom >"$TMP/report.pdf"
LINK=$(curl -fsS "$GATEWAY/credgate/v1/s3/links" -H 'Content-Type: application/json' \
    -d '{"operation": "upload", "filename": "Q3 report.pdf", "content_type": "application/pdf", "expires_in": 300}')
URL=$(json 'd["url"]' <<<"$LINK")
KEY=$(json 'd["key"]' <<<"$LINK")
TYPE=$(json 'd["headers"]["Content-Type"]' <<<"$LINK")
[[ $KEY == *.pdf && $TYPE == application/pdf ]] || { echo "unexpected link answer: $LINK"; exit 1; }
if [[ $1 == checks-signatures ]]; then
    STATUS=$(curl -sS -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: text/plain' --data-binary @"$TMP/report.pdf" "$URL")
    [[ $STATUS == 403 ]] || { echo "an upload link with another Content-Type was not refused ($STATUS)"; exit 1; }
fi
curl -fsS -X PUT -H "Content-Type: $TYPE" --data-binary @"$TMP/report.pdf" "$URL" -o /dev/null
DOWN=$(curl -fsS "$GATEWAY/credgate/v1/s3/links" -H 'Content-Type: application/json' \
    -d "{\"operation\": \"download\", \"key\": \"$KEY\", \"download_filename\": \"Q3 report.pdf\"}")
curl -fsS "$(json 'd["url"]' <<<"$DOWN")" -o "$TMP/via-link"
curl -fsSL "$GATEWAY/credgate/v1/s3/download/$KEY" -o "$TMP/via-redirect"
cmp "$TMP/report.pdf" "$TMP/via-link" && cmp "$TMP/report.pdf" "$TMP/via-redirect"
echo "curl links: ok (3 MB up through an upload link, down through a download link and the 302)"
}
curl_links checks-signatures

[[ $S3_MOTO == 1 ]] || exit 0
# A second, independent S3: moto's server, credgate in front of it with (fake) keys it holds.
MOTO_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >/dev/null 2>&1 &
MOTO_PID=$!
BUCKET=moto-bucket
"$VENV/bin/python" - "$MOTO_PORT" "$BUCKET" <<'PY'
import sys, time, boto3
for _ in range(100):
    try:
        boto3.client("s3", endpoint_url=f"http://127.0.0.1:{sys.argv[1]}", region_name="us-east-1", aws_access_key_id="moto",
                     aws_secret_access_key="moto").create_bucket(Bucket=sys.argv[2])
        break
    except Exception:
        time.sleep(0.1)
PY
kill $PID; wait $PID 2>/dev/null || true
env -u AWS_ACCESS_KEY_ID_FILE -u AWS_SECRET_ACCESS_KEY_FILE AWS_ACCESS_KEY_ID=moto AWS_SECRET_ACCESS_KEY=moto AWS_SESSION_TOKEN= \
    AWS_REGION=us-east-1 S3_BUCKET=$BUCKET S3_ENDPOINT_URL="http://127.0.0.1:$MOTO_PORT" \
    "$BIN" serve --config "$CONFIG" --port 0 --log-level warning >"$LOG" 2>&1 &
PID=$!
for _ in $(seq 1 100); do grep -q 'listening on' "$LOG" && break; sleep 0.1; done
GATEWAY=$(grep -o 'listening on http://[0-9.:]*' "$LOG" | head -1 | sed 's/listening on //')
[[ -n $GATEWAY ]] || { echo "credgate did not start:"; cat "$LOG"; exit 1; }
echo "credgate at $GATEWAY, moto at http://127.0.0.1:$MOTO_PORT"
env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY -u AWS_SESSION_TOKEN -u AWS_PROFILE \
    CREDGATE_URL="$GATEWAY" S3_BUCKET="$BUCKET" "$VENV/bin/python" Tests/compat/s3_boto3_check.py
curl_links storage-only
