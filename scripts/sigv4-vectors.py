#!/usr/bin/env python3
"""SigV4 test vectors for credgate, signed by botocore itself.

Writes Tests/CredGateTests/Vectors/sigv4.json: each vector holds the inputs of one S3 request (credentials,
region, endpoint, addressing style, bucket, key, method, query, headers, payload hash, clock) and botocore's exact
output for them: the presigned URL of `generate_presigned_url`, or the headers `S3SigV4Auth` adds. The Swift tests
(Tests/CredGateTests/SigV4Tests.swift) must reproduce every output byte for byte.

Regenerate (any recent botocore; the file records the version that made it):

    python3 -m venv /tmp/sigv4-venv && /tmp/sigv4-venv/bin/pip install botocore
    /tmp/sigv4-venv/bin/python scripts/sigv4-vectors.py           # rewrite the JSON
    /tmp/sigv4-venv/bin/python scripts/sigv4-vectors.py --check   # exit 1 if the checked-in file differs

(or `python3 scripts/sigv4-vectors.py` when the machine's Python already has botocore).

How the outputs are pinned:
- the clock: `botocore.auth.get_current_datetime` is patched to return a fixed time, as botocore's own tests
  patch the datetime that SigV4Auth reads; times with a fraction check that only whole seconds are signed;
- the credentials: fixed example keys passed to the client; every AWS_* variable is removed and the config
  and credentials files point at /dev/null, so nothing of this machine leaks in;
- the network: presigning never sends anything; for header signing a `before-send` hook answers every request
  locally, after botocore has signed it, so the signed request is captured and nothing leaves the machine;
- the inputs: what the Swift signer gets is what botocore's signer had in front of it, captured at
  `before-sign` (headers, URL); botocore's User-Agent (which names this machine's kernel) is replaced there by
  a fixed value, which changes nothing signed since botocore never signs User-Agent;
- checksums: `request_checksum_calculation="when_required"`, so PutObject sends a plain body rather than
  aws-chunked with a trailing CRC (STREAMING-UNSIGNED-PAYLOAD-TRAILER, which credgate does not produce).
"""

import argparse
import base64
import datetime
import hashlib
import json
import os
import sys
from pathlib import Path
from unittest import mock
from urllib.parse import unquote, urlsplit

# Nothing from this machine's AWS set-up may reach the vectors.
for _name in list(os.environ):
    if _name.startswith("AWS_"):
        del os.environ[_name]
os.environ["AWS_CONFIG_FILE"] = os.devnull
os.environ["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull

import botocore  # noqa: E402
import botocore.session  # noqa: E402
from botocore.auth import S3SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest, AWSResponse  # noqa: E402
from botocore.config import Config  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402
from botocore.utils import percent_encode  # noqa: E402

OUTPUT = Path(__file__).resolve().parent.parent / "Tests" / "CredGateTests" / "Vectors" / "sigv4.json"

CREDENTIALS = {
    # The keys of AWS's documentation examples ("Authenticating Requests: Using Query Parameters"), also used in
    # botocore's tests.
    "example": {
        "access_key_id": "AKIAIOSFODNN7EXAMPLE",
        "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "session_token": None,
    },
    # Temporary credentials as STS hands them out: the token is base64, so it carries `/`, `+` and `=`.
    "session": {
        "access_key_id": "ASIAIOSFODNN7EXAMPLE",
        "secret_access_key": "je7MtGbClwBF/2Zp9Utk/h3yCo8nvbEXAMPLEKEY",
        "session_token": "IQoJb3JpZ2luX2VjEXAMPLE//////////wEaCWV1LXdlc3QtMSJHMEUCIQ+sigv4/vector+token==",
    },
}

# Fixed clocks, as seconds since the epoch (exact in binary, so the JSON number round-trips).
TIMES = {
    "doc": 1369353600.0,  # 2013-05-24T00:00:00Z, the date of AWS's documentation examples
    "may2026": 1778312125.75,  # 2026-05-09T07:35:25.75Z: the fraction is never signed
    "leapday": 1709251199.5,  # 2024-02-29T23:59:59.5Z: the last second of a leap day
}

FIXED_USER_AGENT = "credgate-sigv4-vectors (never signed: botocore leaves User-Agent out)"

# Signatures published in AWS's documentation, which botocore must reproduce before anything is written.
DOC_PRESIGNED_SIGNATURE = "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
DOC_HEADER_SIGNATURE = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"


def fixed_clock(time_name):
    moment = datetime.datetime.fromtimestamp(TIMES[time_name], datetime.timezone.utc).replace(tzinfo=None)
    return mock.patch("botocore.auth.get_current_datetime", return_value=moment)


def client(creds_name, region, endpoint, addressing, s3_extra=None):
    creds = CREDENTIALS[creds_name]
    s3 = {"addressing_style": addressing}
    s3.update(s3_extra or {})
    return botocore.session.get_session().create_client(
        "s3",
        region_name=region,
        endpoint_url=endpoint,
        aws_access_key_id=creds["access_key_id"],
        aws_secret_access_key=creds["secret_access_key"],
        aws_session_token=creds["session_token"],
        config=Config(signature_version="s3v4", request_checksum_calculation="when_required", s3=s3),
    )


def query_items(url):
    """The query of a URL as decoded (name, value) pairs in order; value None for a bare `name`."""
    query = urlsplit(url).query
    items = []
    if not query:
        return items
    for part in query.split("&"):
        name, equals, value = part.partition("=")
        items.append([unquote(name), unquote(value) if equals else None])
        # The Swift side re-encodes the decoded pairs with RFC 3986; that must give back botocore's bytes.
        assert percent_encode(unquote(name)) == name, part
        assert not equals or percent_encode(unquote(value)) == value, part
    return items


def origin(url):
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


class _EmptyBody:
    def stream(self, **kwargs):
        return iter([b""])


def capture(c):
    """Hooks that record the request as botocore's signer gets it and as it would leave, and answer locally."""
    seen = {}

    def before_sign(request, **kwargs):
        if "User-Agent" in request.headers:
            request.headers.replace_header("User-Agent", FIXED_USER_AGENT)
        seen["headers"] = [[name, value] for name, value in request.headers.items()]
        seen["url"] = request.url
        body = request.body
        if hasattr(body, "read"):
            position = body.tell()
            body = body.read()
            request.body.seek(position)
        seen["body"] = body or b""

    def before_send(request, **kwargs):
        seen["sent"] = [[name, value.decode() if isinstance(value, bytes) else value]
                        for name, value in request.headers.items()]
        seen["sent_url"] = request.url
        return AWSResponse(request.url, 200, {}, _EmptyBody())

    c.meta.events.register("before-sign.s3", before_sign)
    c.meta.events.register("before-send.s3", before_send)
    return seen


SIGNER_HEADERS = ("x-amz-date", "x-amz-security-token", "x-amz-content-sha256", "authorization")


def added_headers(sent):
    """The headers the signer wrote, in the order botocore wrote them."""
    return [[name, value] for name, value in sent if name.lower() in SIGNER_HEADERS]


def body_fields(body):
    if not body:
        return {}
    try:
        return {"body": body.decode("utf-8")}
    except UnicodeDecodeError:
        return {"body_base64": base64.b64encode(body).decode()}


# MARK: Presigned URLs (generate_presigned_url)

PRESIGN_CASES = [
    # name, credentials, time, region, endpoint (None: botocore's own), addressing, s3 extra config,
    # client method, params, expires, HTTP method (None: the operation's)
    dict(name="doc-example-get", credentials="example", time="doc", region="us-east-1", endpoint=None,
         expected_origin="https://examplebucket.s3.amazonaws.com", addressing="virtual",
         method="get_object", params={"Bucket": "examplebucket", "Key": "test.txt"}, expires=86400,
         note="AWS's published example; botocore's us-east-1 default is the global endpoint s3.amazonaws.com"),
    dict(name="get-path-style", credentials="example", time="may2026", region="eu-west-1", endpoint=None,
         addressing="path", method="get_object",
         params={"Bucket": "credgate-files", "Key": "photos/2026/holiday photo.jpg"}, expires=3600),
    dict(name="get-virtual-host-session", credentials="session", time="may2026", region="eu-west-1",
         endpoint=None, addressing="virtual", method="get_object",
         params={"Bucket": "credgate-files", "Key": "photos/2026/holiday photo.jpg"}, expires=3600),
    dict(name="get-unicode-key", credentials="example", time="may2026", region="eu-central-1", endpoint=None,
         addressing="virtual", method="get_object",
         params={"Bucket": "credgate-files", "Key": "résumés/Jürgen Müller — CV.pdf"}, expires=900),
    dict(name="get-unicode-key-session-path", credentials="session", time="may2026", region="ap-northeast-1",
         endpoint=None, addressing="path", method="get_object",
         params={"Bucket": "credgate-files", "Key": "書類/ключ 🔑.pdf"}, expires=900),
    dict(name="get-plus-key", credentials="example", time="may2026", region="us-east-1", endpoint=None,
         s3_extra={"us_east_1_regional_endpoint": "regional"}, addressing="path", method="get_object",
         params={"Bucket": "credgate-files", "Key": "a+b c+d/1+1=2.txt"}, expires=600,
         note="us_east_1_regional_endpoint=regional: the regional endpoint credgate defaults to"),
    dict(name="get-reserved-characters-key", credentials="session", time="may2026", region="eu-west-1",
         endpoint=None, addressing="virtual", method="get_object",
         params={"Bucket": "credgate-files", "Key": "odd/a!b'c(d)e*f~g=h&i?j#k;l,m$n@o:p[q]r%s^t`u{v}w|x\"y<z>.txt"},
         expires=600),
    dict(name="get-unnormalised-path", credentials="example", time="may2026", region="eu-west-1",
         endpoint=None, addressing="path", method="get_object",
         params={"Bucket": "credgate-files", "Key": "/leading//double/./dot/../dotdot"}, expires=600,
         note="S3 keys are not paths: no dot-segment removal, no slash merging"),
    dict(name="get-content-disposition", credentials="example", time="may2026", region="eu-west-1",
         endpoint=None, addressing="path", method="get_object",
         params={"Bucket": "credgate-files", "Key": "uploads/4f0c5a1e-9b7d-4c1e-8f2a-3d6b9e0c71e1.pdf",
                 "ResponseContentDisposition": 'attachment; filename="Board license 2026.pdf"',
                 "ResponseContentType": "application/pdf"}, expires=3600),
    dict(name="get-content-disposition-session-unicode", credentials="session", time="may2026",
         region="eu-west-1", endpoint=None, addressing="virtual", method="get_object",
         params={"Bucket": "credgate-files", "Key": "uploads/4f0c5a1e-9b7d-4c1e-8f2a-3d6b9e0c71e1.pdf",
                 "ResponseContentDisposition": "attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf",
                 "ResponseContentType": "application/pdf"}, expires=3600),
    dict(name="get-max-expiry-leap-day", credentials="session", time="leapday", region="us-west-2",
         endpoint=None, addressing="virtual", method="get_object",
         params={"Bucket": "credgate-files", "Key": "k.bin"}, expires=604800),
    dict(name="put-content-type", credentials="example", time="may2026", region="eu-west-1", endpoint=None,
         addressing="path", method="put_object",
         params={"Bucket": "credgate-files", "Key": "uploads/4f0c5a1e-9b7d-4c1e-8f2a-3d6b9e0c71e1.pdf",
                 "ContentType": "application/octet-stream"}, expires=900),
    dict(name="put-content-type-session", credentials="session", time="may2026", region="eu-west-1",
         endpoint=None, addressing="virtual", method="put_object",
         params={"Bucket": "credgate-files", "Key": "uploads/4f0c5a1e-9b7d-4c1e-8f2a-3d6b9e0c71e1.pdf",
                 "ContentType": "application/pdf"}, expires=900),
    dict(name="put-content-type-and-encoding", credentials="session", time="may2026", region="eu-west-1",
         endpoint=None, addressing="path", method="put_object",
         params={"Bucket": "credgate-files", "Key": "logs/2026 05 09+app.log.gz",
                 "ContentType": "text/plain; charset=utf-8", "ContentEncoding": "gzip"}, expires=900),
    dict(name="put-unicode-key", credentials="example", time="may2026", region="eu-west-1", endpoint=None,
         addressing="virtual", method="put_object",
         params={"Bucket": "credgate-files", "Key": "übersicht/Straße 1+2.pdf", "ContentType": "application/pdf"},
         expires=900),
    dict(name="delete", credentials="example", time="may2026", region="eu-west-1", endpoint=None,
         addressing="path", method="delete_object",
         params={"Bucket": "credgate-files", "Key": "uploads/old report.pdf"}, expires=300),
    dict(name="delete-session-virtual-plus", credentials="session", time="may2026", region="eu-west-1",
         endpoint=None, addressing="virtual", method="delete_object",
         params={"Bucket": "credgate-files", "Key": "uploads/a+b.pdf"}, expires=300),
    dict(name="get-local-endpoint-path", credentials="example", time="may2026", region="us-east-1",
         endpoint="http://127.0.0.1:9000", addressing="path", method="get_object",
         params={"Bucket": "credgate-files", "Key": "docs/a b.pdf"}, expires=600,
         note="an S3-compatible server on a non-default port: the port is part of the signed host"),
    dict(name="put-local-endpoint-session", credentials="session", time="may2026", region="us-east-1",
         endpoint="http://localhost:9000", addressing="path", method="put_object",
         params={"Bucket": "credgate-files", "Key": "docs/a b.pdf", "ContentType": "application/octet-stream"},
         expires=600),
    dict(name="get-custom-endpoint-virtual", credentials="example", time="may2026", region="eu-west-1",
         endpoint="https://storage.example.com:9443", addressing="virtual", method="get_object",
         params={"Bucket": "credgate-files", "Key": "k.pdf"}, expires=600),
    dict(name="get-explicit-default-port", credentials="example", time="may2026", region="eu-west-1",
         endpoint="https://storage.example.com:443", addressing="path", method="get_object",
         params={"Bucket": "credgate-files", "Key": "k.pdf"}, expires=600,
         note="the URL keeps :443 as written; the signed host leaves the default port out"),
]


def presign_vector(case):
    c = client(case["credentials"], case["region"], case["endpoint"], case["addressing"], case.get("s3_extra"))
    seen = {}

    def before_sign(request, **kwargs):
        seen["headers"] = [[name, value] for name, value in request.headers.items()]

    c.meta.events.register("before-sign.s3", before_sign)
    with fixed_clock(case["time"]):
        url = c.generate_presigned_url(case["method"], Params=case["params"], ExpiresIn=case["expires"])
    operation = c.meta.service_model.operation_model(
        c.meta.method_to_api_mapping[case["method"]])
    split = urlsplit(url)
    # The operation's own query parameters come first, then the X-Amz-* ones (botocore writes them so).
    own_query = [item for item in query_items(url) if not item[0].startswith("X-Amz-")]
    vector = {
        "name": case["name"],
        "botocore_call": {"method": case["method"], "params": case["params"], "expires_in": case["expires"]},
        "credentials": case["credentials"],
        "time": case["time"],
        "region": case["region"],
        "service": "s3",
        "endpoint": case["endpoint"] or aws_endpoint(case),
        "addressing": case["addressing"],
        "bucket": case["params"]["Bucket"],
        "key": case["params"]["Key"],
        "method": operation.http["method"],
        "expires": case["expires"],
        "headers": seen["headers"],
        "query": own_query,
        "url": url,
    }
    if "note" in case:
        vector["note"] = case["note"]
    # The endpoint must be what credgate would be configured with: the origin botocore chose, minus the bucket.
    expected_origin = case.get("expected_origin")
    if expected_origin:
        assert origin(url) == expected_origin, (case["name"], url)
    assert url.split("?")[0] == address(vector["endpoint"], case["addressing"], vector["bucket"], vector["key"]), url
    if case["name"] == "doc-example-get":
        assert url.endswith("&X-Amz-Signature=" + DOC_PRESIGNED_SIGNATURE), url
    assert split.query.endswith("X-Amz-Signature=" + url.rsplit("=", 1)[1])
    return vector


def aws_endpoint(case):
    """The regional endpoint the vector's URL was made against, written as credgate's configuration would."""
    region = case["region"]
    if region == "us-east-1" and not (case.get("s3_extra") or {}).get("us_east_1_regional_endpoint"):
        return "https://s3.amazonaws.com"
    return f"https://s3.{region}.amazonaws.com"


# MARK: Header signing (S3SigV4Auth through a client, answered locally)

HEADER_CLIENT_CASES = [
    dict(name="put-object-payload-hash", credentials="example", time="may2026", region="us-east-1",
         endpoint="http://127.0.0.1:9000", addressing="path", method="put_object",
         params={"Bucket": "credgate-files", "Key": "docs/hello world+1.txt", "Body": b"hello world\n",
                 "ContentType": "text/plain", "Metadata": {"note": "  two   spaces\tand a tab  "}},
         note="over http botocore always hashes the body"),
    dict(name="put-object-payload-hash-session", credentials="session", time="may2026", region="us-east-1",
         endpoint="http://127.0.0.1:9000", addressing="path", method="put_object",
         params={"Bucket": "credgate-files", "Key": "docs/ünïcödé.txt", "Body": "grüße\n".encode(),
                 "ContentType": "text/plain; charset=utf-8"}),
    dict(name="put-object-unsigned-payload", credentials="example", time="may2026", region="eu-west-1",
         endpoint=None, addressing="path", s3_extra={"payload_signing_enabled": False}, method="put_object",
         params={"Bucket": "credgate-files", "Key": "big/stream 1.bin", "Body": b"\x00\x01\x02 streamed",
                 "ContentType": "application/octet-stream"}),
    dict(name="put-object-unsigned-payload-session", credentials="session", time="may2026", region="eu-west-1",
         endpoint=None, addressing="virtual", s3_extra={"payload_signing_enabled": False}, method="put_object",
         params={"Bucket": "credgate-files", "Key": "big/stream+2.bin", "Body": b"streamed",
                 "ContentType": "application/octet-stream"}),
    dict(name="put-object-payload-hash-https-session", credentials="session", time="leapday", region="eu-west-1",
         endpoint=None, addressing="virtual", method="put_object",
         params={"Bucket": "credgate-files", "Key": "small.json", "Body": b'{"a": 1}',
                 "ContentType": "application/json"},
         note="over https botocore hashes a body that carries no Content-MD5 or checksum header"),
    dict(name="get-object-range", credentials="example", time="may2026", region="eu-west-1", endpoint=None,
         addressing="virtual", method="get_object",
         params={"Bucket": "credgate-files", "Key": "résumés/Jürgen Müller — CV.pdf", "Range": "bytes=0-9"}),
    dict(name="get-object-session-unsigned", credentials="session", time="may2026", region="eu-west-1",
         endpoint=None, addressing="path", s3_extra={"payload_signing_enabled": False}, method="get_object",
         params={"Bucket": "credgate-files", "Key": "a+b c.pdf"}),
    dict(name="list-objects-v2-query", credentials="session", time="may2026", region="eu-west-1",
         endpoint="http://127.0.0.1:9000", addressing="path", method="list_objects_v2",
         params={"Bucket": "credgate-files", "Prefix": "a b/ü+", "Delimiter": "/", "MaxKeys": 10,
                 "StartAfter": "a b/ü+/x~y"}),
    dict(name="create-multipart-upload", credentials="example", time="may2026", region="us-east-1",
         endpoint="http://127.0.0.1:9000", addressing="path", method="create_multipart_upload",
         params={"Bucket": "credgate-files", "Key": "big/20 MiB.bin", "ContentType": "application/octet-stream"},
         note="?uploads has no value: on the wire bare, in the canonical query `uploads=`"),
    dict(name="upload-part-session", credentials="session", time="may2026", region="us-east-1",
         endpoint="http://127.0.0.1:9000", addressing="path", method="upload_part",
         params={"Bucket": "credgate-files", "Key": "big/20 MiB.bin", "PartNumber": 2,
                 "UploadId": "VXBsb2FkIElEIGZvciA2aWWpbmcncyBteS1tb3ZpZS5tMnRzIHVwbG9hZA--", "Body": b"part two"}),
    dict(name="delete-object-virtual", credentials="example", time="may2026", region="eu-west-1",
         endpoint=None, addressing="virtual", method="delete_object",
         params={"Bucket": "credgate-files", "Key": "uploads/old report.pdf"}),
]


def header_client_vector(case):
    c = client(case["credentials"], case["region"], case["endpoint"], case["addressing"], case.get("s3_extra"))
    seen = capture(c)
    with fixed_clock(case["time"]):
        getattr(c, case["method"])(**case["params"])
    params = {k: v for k, v in case["params"].items() if k != "Body"}
    sent = seen["sent"]
    payload_hash = dict((n.lower(), v) for n, v in sent)["x-amz-content-sha256"]
    body = seen["body"] if isinstance(seen["body"], bytes) else seen["body"].encode()
    if payload_hash != "UNSIGNED-PAYLOAD":
        assert payload_hash == hashlib.sha256(body).hexdigest(), case["name"]
    assert seen["sent_url"] == seen["url"], case["name"]
    vector = {
        "name": case["name"],
        "botocore_call": {"method": case["method"], "params": params},
        "credentials": case["credentials"],
        "time": case["time"],
        "region": case["region"],
        "service": "s3",
        "endpoint": case["endpoint"] or aws_endpoint(case),
        "addressing": case["addressing"],
        "bucket": case["params"]["Bucket"],
        "key": case["params"].get("Key", ""),
        "method": c.meta.service_model.operation_model(
            c.meta.method_to_api_mapping[case["method"]]).http["method"],
        "query": query_items(seen["url"]),
        "headers": seen["headers"],
        "payload_hash": payload_hash,
        **body_fields(body),
        "url": seen["url"],
        "expected_headers": added_headers(sent),
    }
    if "note" in case:
        vector["note"] = case["note"]
    return vector


# MARK: Header signing (S3SigV4Auth directly, for what no client call produces)

HEADER_AUTH_CASES = [
    dict(name="doc-example-get-object-range", credentials="example", time="doc", region="us-east-1",
         endpoint="https://s3.amazonaws.com", addressing="virtual", bucket="examplebucket", key="test.txt",
         method="GET", query=[], headers=[["Range", "bytes=0-9"]], body=b"", payload_signing=True,
         note="AWS's published example (Signature Calculations for the Authorization Header: GET Object)"),
    dict(name="canonical-headers-edge-cases", credentials="session", time="may2026", region="eu-west-1",
         endpoint="https://s3.eu-west-1.amazonaws.com", addressing="path", bucket="credgate-files",
         key="edge/ü +~.txt", method="PUT", query=[],
         headers=[["Content-Type", "  text/plain;   charset=utf-8 "], ["X-Amz-Meta-Dup", "first"],
                  ["x-amz-meta-dup", "  second   value "], ["X-AMZ-META-TABS", "a\t\tb"],
                  ["x-amz-meta-empty", ""], ["User-Agent", "curl/8.5.0"], ["Expect", "100-continue"],
                  ["Connection", "keep-alive"], ["Transfer-Encoding", "chunked"], ["X-Amzn-Trace-Id", "Root=1"],
                  ["Content-MD5", "1B2M2Y8AsgTpgAmY7PhCfg=="]],
         body=b"", payload_signing=False,
         note="repeated names join with commas in order; values trimmed and runs of whitespace collapsed; "
              "names botocore never signs (User-Agent, Expect, hop-by-hop, X-Amzn-Trace-Id) stay out"),
    dict(name="canonical-query-edge-cases", credentials="example", time="may2026", region="eu-west-1",
         endpoint="http://localhost:9000", addressing="path", bucket="credgate-files", key="q",
         method="GET",
         query=[["b", "2"], ["a", "1"], ["a", "0"], ["flag", None], ["empty", ""], ["a-b", "x y"],
                ["A", "upper"], ["sp ace", "+plus+"], ["ü", "ключ"], ["tilde~", "a~b*c"]],
         headers=[], body=b"", payload_signing=True,
         note="sorted by encoded name, then value; bare names sign as `name=`; upper case sorts first"),
    dict(name="explicit-default-port-session-payload", credentials="session", time="leapday", region="eu-west-1",
         endpoint="https://storage.example.com:443", addressing="path", bucket="credgate-files", key="k.bin",
         method="PUT", query=[], headers=[["Content-Type", "application/octet-stream"]],
         body=b"payload bytes", payload_signing=True),
    dict(name="bucket-listing-virtual-root", credentials="example", time="may2026", region="eu-west-1",
         endpoint="https://s3.eu-west-1.amazonaws.com", addressing="virtual", bucket="credgate-files", key="",
         method="GET", query=[["list-type", "2"]], headers=[], body=b"", payload_signing=False,
         note="an empty key addresses the bucket: `/` virtual-host style"),
]


def wire_query(items):
    return "&".join(percent_encode(n) if v is None else f"{percent_encode(n)}={percent_encode(v)}"
                    for n, v in items)


def address(endpoint, addressing, bucket, key):
    """Where botocore's serializer would put the request (checked against client calls in the script's self-test)."""
    parts = urlsplit(endpoint)
    if addressing == "virtual":
        netloc, path = f"{bucket}.{parts.netloc}", "/" + percent_encode(key, safe="/~")
    else:
        netloc = parts.netloc
        path = f"/{percent_encode(bucket)}" + (f"/{percent_encode(key, safe='/~')}" if key else "")
    return f"{parts.scheme}://{netloc}{path}"


def header_auth_vector(case):
    creds = CREDENTIALS[case["credentials"]]
    url = address(case["endpoint"], case["addressing"], case["bucket"], case["key"])
    if case["query"]:
        url += "?" + wire_query(case["query"])
    request = AWSRequest(method=case["method"], url=url, data=case["body"])
    for name, value in case["headers"]:
        request.headers[name] = value  # appends: repeated names stay repeated
    request.context["client_config"] = Config(s3={"payload_signing_enabled": case["payload_signing"]})
    auth = S3SigV4Auth(Credentials(creds["access_key_id"], creds["secret_access_key"], creds["session_token"]),
                       "s3", case["region"])
    with fixed_clock(case["time"]):
        auth.add_auth(request)
    sent = [[n, v] for n, v in request.headers.items()]
    payload_hash = request.headers["X-Amz-Content-SHA256"]
    if case["name"] == "doc-example-get-object-range":
        assert request.headers["Authorization"].endswith("Signature=" + DOC_HEADER_SIGNATURE), sent
    vector = {
        "name": case["name"],
        "botocore_call": {"signer": "botocore.auth.S3SigV4Auth.add_auth",
                          "payload_signing_enabled": case["payload_signing"]},
        "credentials": case["credentials"],
        "time": case["time"],
        "region": case["region"],
        "service": "s3",
        "endpoint": case["endpoint"],
        "addressing": case["addressing"],
        "bucket": case["bucket"],
        "key": case["key"],
        "method": case["method"],
        "query": query_items(url),
        "headers": case["headers"],
        "payload_hash": payload_hash,
        **body_fields(case["body"]),
        "url": request.url,
        "expected_headers": added_headers(sent),
    }
    if "note" in case:
        vector["note"] = case["note"]
    return vector


def self_test():
    """The script's own address() must agree with botocore's serializer wherever a client call shows it."""
    for case in HEADER_CLIENT_CASES:
        c = client(case["credentials"], case["region"], case["endpoint"], case["addressing"], case.get("s3_extra"))
        seen = capture(c)
        with fixed_clock(case["time"]):
            getattr(c, case["method"])(**case["params"])
        got = seen["url"].split("?")[0]
        want = address(case["endpoint"] or aws_endpoint(case), case["addressing"], case["params"]["Bucket"],
                       case["params"].get("Key", ""))
        assert got == want, (case["name"], got, want)


def generate():
    self_test()
    return {
        "about": "SigV4 vectors signed by botocore; regenerate with scripts/sigv4-vectors.py (see its header).",
        "generator": {"script": "scripts/sigv4-vectors.py", "botocore": botocore.__version__},
        "credentials": CREDENTIALS,
        "times": {name: {"epoch_seconds": seconds,
                         "utc": datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc).isoformat()}
                  for name, seconds in TIMES.items()},
        "presign": [presign_vector(case) for case in PRESIGN_CASES],
        "header_signing": ([header_client_vector(case) for case in HEADER_CLIENT_CASES]
                           + [header_auth_vector(case) for case in HEADER_AUTH_CASES]),
    }


def to_json(value, indent=""):
    """Indented JSON whose short lists (a header, a query parameter) stay on one line, so a vector reads as one
    screen rather than three."""
    flat = json.dumps(value, ensure_ascii=False)
    if not isinstance(value, (dict, list)) or (isinstance(value, list) and len(flat) <= 100):
        return flat
    inner = indent + "  "
    if isinstance(value, dict):
        items = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {to_json(v, inner)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    return "[\n" + ",\n".join(inner + to_json(v, inner) for v in value) + "\n" + indent + "]"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="compare with the checked-in file instead of writing")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    args = parser.parse_args()
    text = to_json(generate()) + "\n"
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        # The botocore version may differ between machines; the vectors themselves may not.
        strip = lambda t: "\n".join(line for line in t.splitlines() if '"botocore":' not in line)
        if strip(current) != strip(text):
            print(f"{args.output} differs from what botocore {botocore.__version__} signs now", file=sys.stderr)
            return 1
        print(f"{args.output} matches botocore {botocore.__version__}")
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    data = json.loads(text)
    print(f"wrote {args.output}: {len(data['presign'])} presigned URLs, "
          f"{len(data['header_signing'])} header signatures (botocore {botocore.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
