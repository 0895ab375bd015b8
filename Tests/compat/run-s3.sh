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
# Prints 's3-boto3: N passed, M failed' and 'curl links: ok'.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
BIN=${1:-.build/debug/credgate}
VENV=${VENV:-.build/s3-venv}
CONFIG=${CONFIG:-Config/s3.yaml}

if [[ ! -x $VENV/bin/python ]] || ! "$VENV/bin/python" -c 'import boto3' 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check boto3
fi
echo "python: $("$VENV/bin/python" --version), boto3 $("$VENV/bin/python" -c 'import boto3; print(boto3.__version__)')"

LOG=$(mktemp)
TMP=$(mktemp -d)
"$BIN" serve --sandbox --config "$CONFIG" --port 0 --log-level warning >"$LOG" 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null || true; wait $PID 2>/dev/null || true; rm -rf "$LOG" "$TMP"' EXIT
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

# curl with links: the app never sees a key.
head -c 3000000 /dev/urandom >"$TMP/report.pdf"
json() { "$VENV/bin/python" -c "import json, sys; d = json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
LINK=$(curl -fsS "$GATEWAY/credgate/v1/s3/links" -H 'Content-Type: application/json' \
    -d '{"operation": "upload", "filename": "Q3 report.pdf", "content_type": "application/pdf", "expires_in": 300}')
URL=$(json 'd["url"]' <<<"$LINK")
KEY=$(json 'd["key"]' <<<"$LINK")
TYPE=$(json 'd["headers"]["Content-Type"]' <<<"$LINK")
[[ $KEY == *.pdf && $TYPE == application/pdf ]] || { echo "unexpected link answer: $LINK"; exit 1; }
STATUS=$(curl -sS -o /dev/null -w '%{http_code}' -X PUT -H 'Content-Type: text/plain' --data-binary @"$TMP/report.pdf" "$URL")
[[ $STATUS == 403 ]] || { echo "an upload link with another Content-Type was not refused ($STATUS)"; exit 1; }
curl -fsS -X PUT -H "Content-Type: $TYPE" --data-binary @"$TMP/report.pdf" "$URL" -o /dev/null
DOWN=$(curl -fsS "$GATEWAY/credgate/v1/s3/links" -H 'Content-Type: application/json' \
    -d "{\"operation\": \"download\", \"key\": \"$KEY\", \"download_filename\": \"Q3 report.pdf\"}")
curl -fsS "$(json 'd["url"]' <<<"$DOWN")" -o "$TMP/via-link"
curl -fsSL "$GATEWAY/credgate/v1/s3/download/$KEY" -o "$TMP/via-redirect"
cmp "$TMP/report.pdf" "$TMP/via-link" && cmp "$TMP/report.pdf" "$TMP/via-redirect"
echo "curl links: ok (3 MB up through an upload link, down through a download link and the 302)"
