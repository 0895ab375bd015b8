#!/usr/bin/env python3
"""Writes the seed corpus of every fuzz target into Fuzz/Corpus/<target>/ (stdlib only, deterministic).

The seeds are checked in; this script says how each was made, in the input layout its target's file documents,
so a seed can be changed or added here rather than by hand in a binary file. Run it from anywhere:
    python3 Fuzz/make-corpus.py
It rewrites only the files it names (a seed saved by hand, e.g. a minimised crash, stays).
"""
import base64
import hashlib
import hmac
import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent
CORPUS = ROOT / "Corpus"
CONFIG = ROOT.parent / "Config"

PDF = b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(13) + b"\x00\x00\x00\x00IEND\xaeB`\x82"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
DOCX = b"PK\x03\x04" + bytes(40)
SDK_BOUNDARY = "8f3c2a1b9d7e6f5a4b3c2d1e0f9a8b7c"  # httpx: 16 random bytes as hex


def write(target, name, data):
    folder = CORPUS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data if isinstance(data, bytes) else data.encode())


# ------------------------------------------------------------------------------------------ multipart uploads
def part(boundary, name, value, filename=None, content_type=None, extra=b""):
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'
    if filename is not None:
        head += f'; filename="{filename}"'
    head += "\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    return head.encode() + extra + b"\r\n" + value + b"\r\n"


def upload(flags, sizes, content_type, body):
    return bytes([flags, len(sizes)]) + bytes(sizes) + content_type.encode() + b"\n" + body


def upload_seeds():
    b = SDK_BOUNDARY
    ct = f"multipart/form-data; boundary={b}"
    # What assured-py (httpx) sends for files.upload(data, "license.pdf", name=...): the data field first.
    sdk = part(b, "name", b"license.pdf") + part(b, "file", PDF, "license.pdf", "application/pdf") + f"--{b}--\r\n".encode()
    write("FuzzUpload", "sdk-pdf", upload(0, [], ct, sdk))
    write("FuzzUpload", "sdk-pdf-hold-chunked", upload(1 | 4, [1, 7, 64], ct, sdk))
    # No name field (credgate generates one), generic Content-Type (credgate corrects it), small chunks.
    noname = part(b, "file", PNG, "scan.PNG", "application/octet-stream") + f"--{b}--\r\n".encode()
    write("FuzzUpload", "png-no-name-octet-stream", upload(0, [3, 0, 5], ct, noname))
    # The upload-and-attach endpoint's form: document fields captured, the name after the file part.
    attach = (part(b, "document_type", b"license") + part(b, "expiration_date", b"2027-01-31")
              + part(b, "file", JPEG, "photo.jpeg", "image/jpeg") + part(b, "name", b"photo.jpeg")
              + f"--{b}--\r\n".encode())
    write("FuzzUpload", "jpeg-fields-captured", upload(2, [], ct, attach))
    write("FuzzUpload", "jpeg-fields-captured-hold", upload(3, [16], ct, attach))
    # Quoted boundary with odd characters, a preamble, transport padding after a delimiter, an epilogue.
    qb = "a b'c(1)+_,-./:=?"
    padded = (b"preamble\r\n" + part(qb, "file", PDF, "a.pdf").replace(f"--{qb}\r\n".encode(), f"--{qb} \t\r\n".encode(), 1)
              + f"--{qb}--\r\nepilogue".encode())
    write("FuzzUpload", "quoted-boundary-preamble-epilogue", upload(0, [], f'Multipart/Form-Data; charset=utf-8; Boundary="{qb}"', padded))
    # Rejections: a part header name byte >= 0x80 (issue 8: it trapped MultipartKit's parser), two files, a
    # renamed .docx, no closing delimiter, over a 64-byte limit, not multipart at all.
    write("FuzzUpload", "header-name-0x80", upload(0, [], "multipart/form-data; boundary=B", b"--B\r\nX\x80: 1\r\n\r\n"))
    two = part(b, "file", PDF, "a.pdf") + part(b, "file", PDF, "b.pdf") + f"--{b}--\r\n".encode()
    write("FuzzUpload", "two-files", upload(0, [], ct, two))
    write("FuzzUpload", "docx-renamed-pdf", upload(1, [], ct, part(b, "file", DOCX, "cv.pdf") + f"--{b}--\r\n".encode()))
    write("FuzzUpload", "unclosed", upload(0, [2], ct, part(b, "file", PDF, "a.pdf")))
    write("FuzzUpload", "over-64-byte-limit", upload(1 << 3, [], ct, sdk))
    write("FuzzUpload", "not-multipart", upload(0, [], "application/json", b'{"file": "x"}'))


def raw_upload(flags, sizes, segment, body):
    return bytes([flags, len(sizes)]) + bytes(sizes) + segment.encode() + b"\n" + body


def raw_upload_seeds():
    write("FuzzRawUpload", "license-pdf", raw_upload(0, [], "license.pdf", PDF))  # curl -T license.pdf
    write("FuzzRawUpload", "png-hold-chunked", raw_upload(1 | 2, [1, 2, 3], "scan%20copy.PNG", PNG))
    write("FuzzRawUpload", "jpeg-limit-64", raw_upload(1 << 2, [], "photo.jpeg", JPEG + bytes(80)))
    write("FuzzRawUpload", "unicode-name", raw_upload(0, [4], "%E2%82%AC%20r%C3%A9sum%C3%A9.pdf", PDF))
    write("FuzzRawUpload", "bad-escape", raw_upload(0, [], "bad%ZZ.pdf", PDF))
    write("FuzzRawUpload", "traversal-name", raw_upload(0, [], "..%2F..%2Fetc%2Fpasswd.pdf", PDF))
    write("FuzzRawUpload", "nul-in-name", raw_upload(0, [], "a%00b.pdf", PDF))
    write("FuzzRawUpload", "docx-renamed", raw_upload(1, [], "cv.pdf", DOCX))
    write("FuzzRawUpload", "short-body", raw_upload(0, [], "x.png", b"\x89PN"))


# ------------------------------------------------------------------------------------------ request heads
def head(method_index, options, uri, headers):
    """options: bit 7 HTTP/1.0, bits 0-6 the header size limit (127: 16 KiB)."""
    return bytes([method_index, options]) + uri.encode("latin-1") + b"\n" + b"\n".join(h.encode("latin-1") for h in headers)


def request_head_seeds():
    get, post, connect, options = 1, 5, 0, 24
    base = ["Host: 127.0.0.1:8080", "User-Agent: python-httpx/0.28.1", "Accept: */*"]
    write("FuzzRequestHead", "get-providers", head(get, 127, "/api/v1/users/providers-list/?page=2&page_size=50",
                                                     base + ["X-Request-ID: 7f2c1a9e-0b4d-4e4f-9d1a-3c5b6a7d8e9f"]))
    write("FuzzRequestHead", "post-upload", head(post, 127, "/api/v1/files/handle/", base + [
        f"Content-Type: multipart/form-data; boundary={SDK_BOUNDARY}", "Content-Length: 1234",
        "Connection: keep-alive, x-private"]))
    write("FuzzRequestHead", "chunked", head(post, 127, "/api/v1/users/provider-documents/", base + ["Transfer-Encoding: chunked"]))
    write("FuzzRequestHead", "smuggling", head(post, 127, "/api/x", base + ["Content-Length: 5", "Transfer-Encoding: chunked"]))
    write("FuzzRequestHead", "two-lengths", head(post, 127, "/api/x", base + ["Content-Length: 5", "content-length: 6"]))
    write("FuzzRequestHead", "encoded-dot-dot", head(get, 127, "/api/%2e%2E/credgate/healthz", base))
    write("FuzzRequestHead", "encoded-slash", head(get, 127, "/api/..%2F..%2Fetc/passwd", base))
    write("FuzzRequestHead", "backslash", head(get, 127, "/api/..\\x", base))
    write("FuzzRequestHead", "connect", head(connect, 127, "example.com:443", ["Host: example.com:443"]))
    write("FuzzRequestHead", "absolute-form", head(get, 127, "http://example.com/api/", base))
    write("FuzzRequestHead", "asterisk", head(options, 127, "*", base))
    write("FuzzRequestHead", "odd-bytes", head(get, 0, "/api/\xff\x00?q=\r", ["X-\x80: \x01", "X-Request-ID: a b", ": empty"]))
    write("FuzzRequestHead", "http10-no-host", head(get, 0x80 | 127, "/credgate/healthz", ["Connection: keep-alive"]))
    write("FuzzRequestHead", "connection-names-credential", head(get, 127, "/api/x", base + ["Connection: close, X-API-Key"]))
    write("FuzzRequestHead", "normalised", head(get, 127, "/api/v1/files/%68andle/", base))
    write("FuzzRequestHead", "made-up-method", head(200, 3, "/credgate/healthz", ["TE: trailers", "Upgrade: h2c"]))


# ------------------------------------------------------------------------------------------ fast path heads
def fast(mode, data, limit_bits=31, head_request=False):
    """mode: 0 request head, 1 answer head, 2 chunked body; limit: 32 * (limit_bits + 1) bytes, 31: 32 KiB."""
    return bytes([mode | (4 if head_request else 0) | (limit_bits << 3)]) + data.encode("latin-1")


def fast_head_seeds():
    get = "GET /api/v1/users/providers-list/?page=2&page_size=50 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n" \
          "User-Agent: python-httpx/0.28.1\r\nAccept: */*\r\nAccept-Encoding: gzip, deflate\r\n\r\n"
    write("FuzzFastHead", "request-get", fast(0, get))
    write("FuzzFastHead", "request-pipelined", fast(0, get + "HEAD /api/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"))
    write("FuzzFastHead", "request-delete-close", fast(0, "DELETE /api/v1/files/42/ HTTP/1.1\r\nhost: [::1]:8080\r\nConnection: close\r\n\r\n"))
    write("FuzzFastHead", "request-options", fast(0, "OPTIONS /api HTTP/1.1\r\nHOST:x\r\nConnection: keep-alive\r\nA:\r\nB:\t v\t \r\n\r\n"))
    write("FuzzFastHead", "request-post", fast(0, "POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n{}"))
    write("FuzzFastHead", "request-credential", fast(0, "GET /api/x HTTP/1.1\r\nHost: a\r\nX-API-Key: k\r\n\r\n"))
    write("FuzzFastHead", "request-odd-path", fast(0, "GET /api/%2e%2E//x?q=/../%ZZ#f HTTP/1.1\r\nHost: a\r\n\r\n"))
    write("FuzzFastHead", "request-bare-lf", fast(0, "GET / HTTP/1.1\r\nHost: a\nX: y\n\n"))
    write("FuzzFastHead", "request-obs-fold", fast(0, "GET / HTTP/1.1\r\nHost: a\r\nX: y\r\n z\r\n\r\n"))
    write("FuzzFastHead", "request-over-limit", fast(0, get, limit_bits=1))
    write("FuzzFastHead", "request-incomplete", fast(0, get[:40]))
    write("FuzzFastHead", "response-length", fast(1, "HTTP/1.1 200 OK\r\nContent-Type: application/json; charset=utf-8\r\n"
                                                   "Content-Length: 2\r\nX-RateLimit-Reset: 1700000000\r\n\r\n{}"))
    write("FuzzFastHead", "response-chunked", fast(1, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive, x-foo\r\n\r\n"
                                                    "4\r\nWiki\r\n0\r\n\r\n"))
    write("FuzzFastHead", "response-http10", fast(1, "HTTP/1.0 302 Found\r\nLocation: /x\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n"))
    write("FuzzFastHead", "response-until-close", fast(1, "HTTP/1.1 200\r\nRetry-After: 5\r\n\r\nbody"))
    write("FuzzFastHead", "response-head", fast(1, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", head_request=True))
    write("FuzzFastHead", "response-interim", fast(1, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"))
    write("FuzzFastHead", "response-smuggling", fast(1, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"))
    write("FuzzFastHead", "response-bad-status", fast(1, "HTTP/1.1 20 OK\r\n\r\n", limit_bits=0))
    write("FuzzFastHead", "chunked-wikipedia", fast(2, "4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nTrailer: x\r\n\r\nGET"))
    write("FuzzFastHead", "chunked-empty", fast(2, "0\r\n\r\n"))
    write("FuzzFastHead", "chunked-long-size", fast(2, "00000000000001\r\nx\r\nA;a=\"b c\"\r\n0123456789\r\n0;last\r\nA: 1\r\n\r\n"))
    write("FuzzFastHead", "chunked-bare-lf", fast(2, "4\nWiki\r\n0\r\n\r\n"))


# ------------------------------------------------------------------------------------------ S3 URIs, presigned URLs
def s3_seeds():
    for name, uri in [
        ("valid", "s3://assured-uploads/providers/42/license.pdf"),
        ("dots", "s3://my.bucket-1/a/b/c.png"),
        ("key-with-query-chars", "s3://bucket/a%2Fb?c=d#e"),
        ("unicode-key", "s3://bucket/r\u00e9sum\u00e9 \u043a\u043b\u044e\u0447.pdf"),
        ("trailing-newline", "s3://bucket/key.pdf\n"),
        ("uppercase", "S3://Bucket/key"),
        ("ip-bucket", "s3://192.168.1.1/key"),
        ("reserved-prefix", "s3://xn--bucket/key"),
        ("reserved-suffix", "s3://bucket--x-s3/key"),
        ("no-key", "s3://bucket/"),
        ("combining", "s3://bucke\u0301t/key"),
        ("long-key", "s3://bucket/" + "k" * 1025),
    ]:
        write("FuzzS3URI", name, uri)


def presign_seeds():
    v4 = ("https://assured-uploads.s3.amazonaws.com/providers/42/license.pdf?X-Amz-Algorithm=AWS4-HMAC-SHA256"
          "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20260101T000000Z"
          "&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
          "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")
    write("FuzzPresignedURL", "sigv4", v4)
    write("FuzzPresignedURL", "sigv4-token", v4 + "&X-Amz-Security-Token=IQoJb3JpZ2luX2VjEJr%2F%2F%2F%2Fwo%3D")
    write("FuzzPresignedURL", "sigv4-leap-day-week", v4.replace("20260101T000000Z", "20240229T235959Z").replace("=3600", "=604800"))
    write("FuzzPresignedURL", "sigv4-too-long", v4.replace("=3600", "=604801"))
    write("FuzzPresignedURL", "sigv4-fragment", v4 + "#X-Amz-Expires=1")
    v2 = ("https://assured-uploads.s3.amazonaws.com/providers/42/license.pdf?AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE"
          "&Signature=vjbyPxybdZaNmGa%2ByT272YEAiv4%3D&Expires=1767229200")
    write("FuzzPresignedURL", "sigv2", v2)
    write("FuzzPresignedURL", "sigv2-token", v2 + "&x-amz-security-token=FQoGZXIvYXdzE")
    write("FuzzPresignedURL", "sigv2-repeated", v2 + "&Expires=1")
    write("FuzzPresignedURL", "both-forms", v4 + "&Expires=1767229200")
    write("FuzzPresignedURL", "amz-date-alone", "20261231T235960Z")


# ------------------------------------------------------------------------------------------ SSN bodies
def ssn_seeds():
    write("FuzzSSN", "plain", b"\x00" + b'{"ssn": "123-45-6789"}')
    write("FuzzSSN", "plain-spaces-placeholder-client", b"\x01" + b'{"ssn": "123 45 6789", "other": [1, 2.5, {"a": null}]}')
    write("FuzzSSN", "placeholder-ciphertext", b"\x03" + b"123-45-6789")
    write("FuzzSSN", "placeholder-ciphertext-bad", b"\x03" + b"12345678")
    write("FuzzSSN", "platform-ciphertext", b"\x00" + json.dumps({"ssn": base64.b64encode(bytes(range(32))).decode()}).encode())
    write("FuzzSSN", "not-a-string", b"\x00" + b'{"ssn": 123456789}')
    write("FuzzSSN", "array", b"\x00" + b"[]")
    write("FuzzSSN", "nested", b"\x00" + b"[" * 64 + b"]" * 64)
    write("FuzzSSN", "arabic-digits", b"\x00" + '{"ssn": "\u0661\u0662\u0663-\u0664\u0665-\u0666\u0667\u0668\u0669"}'.encode())
    write("FuzzSSN", "escapes", b"\x00" + b'{"ssn": "\\u0031\\u00322-34-5678\\ud800", "x": "\\"}')


# ------------------------------------------------------------------------------------------ JWTs
def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(payload, header=None):
    header = header or {"alg": "HS256", "typ": "JWT"}
    signing = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(payload).encode() if isinstance(payload, dict) else payload)
    signature = hmac.new(b"fuzz-key", signing.encode(), hashlib.sha256).digest()
    return signing + "." + b64url(signature)


def token_seeds():
    iat = 1767225600
    # The platform's access token (simplejwt): token_type, exp, iat, jti, user_id.
    write("FuzzTokenLifetime", "platform-access", b"\x00" + jwt({"token_type": "access", "exp": iat + 10080, "iat": iat,
                                                                   "jti": "5f1c0b7e2d3a4c9b8e7f6a5d4c3b2a19", "user_id": 42}).encode())
    write("FuzzTokenLifetime", "exp-only-margin-30", b"\x1e" + jwt({"exp": iat + 3600}).encode())
    write("FuzzTokenLifetime", "no-exp", b"\x00" + jwt({"sub": "x"}).encode())
    write("FuzzTokenLifetime", "float-exp", b"\x00" + jwt({"exp": 1.7672292005e9, "iat": 1767225600.5}).encode())
    write("FuzzTokenLifetime", "huge-exp", b"\x00" + jwt({"exp": 1e300, "iat": -1e300}).encode())
    write("FuzzTokenLifetime", "string-exp", b"\x00" + jwt({"exp": "1767229200"}).encode())
    write("FuzzTokenLifetime", "expired", b"\x00" + jwt({"exp": iat - 60, "iat": iat - 3660}).encode())
    write("FuzzTokenLifetime", "es256-header", b"\x00" + jwt({"exp": iat + 60}, {"alg": "ES256", "kid": "k1"}).encode())
    write("FuzzTokenLifetime", "opaque", b"\x00" + b"d41d8cd98f00b204e9800998ecf8427e")
    write("FuzzTokenLifetime", "two-dots", b"\x00" + b"..")


# ------------------------------------------------------------------------------------------ configuration
def config_seeds():
    write("FuzzConfig", "credgate.yaml", (CONFIG / "credgate.yaml").read_bytes())
    write("FuzzConfig", "minimal.yaml", (CONFIG / "examples" / "minimal.yaml").read_bytes())
    write("FuzzConfig", "interpolation.yaml", """\
listen: {host: "::1", port: 0, max_header_bytes: 32KiB, idle_timeout: 1m30s}
upstreams:
  a: {url: "${ASSURED_BASE_URL:-https://x.example:8443/base}", ca_file: /run/secrets/ca.pem}
credentials:
  k: {kind: api_key, header: x-api-key, value: "${ASSURED_PASS}${UNSET:-}${EMPTY:-d}"}
routes:
  - {name: r, methods: [GET, post], path: "/a/{id}/**", upstream: a, credentials: [k], max_body_bytes: 1.5MiB}
presign_cache: {max_entries: 0, max_lifetime: 0s}
spool: {memory_limit: 1GiB}
""")
    write("FuzzConfig", "broken.yaml", "upstreams:\n  a:\n    url: [\n\troutes: &x {a: *x}\nupstreams: 1\n")


def main():
    upload_seeds()
    raw_upload_seeds()
    request_head_seeds()
    fast_head_seeds()
    s3_seeds()
    presign_seeds()
    ssn_seeds()
    token_seeds()
    config_seeds()
    for folder in sorted(CORPUS.iterdir()):
        print(f"{folder.name}: {len(os.listdir(folder))} seeds")


if __name__ == "__main__":
    main()
