"""boto3, unmodified, through credgate's S3 signing route with dummy credentials (credgate holds the real keys).

Env: CREDGATE_URL (the S3 listener), S3_BUCKET. Put, get, list, delete, a 20 MiB multipart upload (5 MiB parts),
each verified by content; a bucket credgate does not serve is refused before anything leaves the machine.
Prints 's3-boto3: N passed, M failed' and exits non-zero on any failure.
"""
import hashlib
import io
import os
import sys

import boto3
from botocore.config import Config
from boto3.s3.transfer import TransferConfig
from botocore.exceptions import ClientError

url = os.environ["CREDGATE_URL"]
bucket = os.environ["S3_BUCKET"]
s3 = boto3.client(
    "s3", endpoint_url=url, region_name="us-east-1",
    aws_access_key_id="dummy-not-a-key", aws_secret_access_key="dummy-not-a-secret",
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
)
passed, failed = 0, 0


def check(name, fn):
    global passed, failed
    try:
        fn()
        passed += 1
        print(f"ok   {name}")
    except Exception as error:  # noqa: BLE001 - report every failure and go on
        failed += 1
        print(f"FAIL {name}: {error!r}")


def put_get():
    body = b"hello from boto3 \xe2\x9c\x93"
    s3.put_object(Bucket=bucket, Key="dir/a b+c ü.txt", Body=body, ContentType="text/plain")
    got = s3.get_object(Bucket=bucket, Key="dir/a b+c ü.txt")
    assert got["Body"].read() == body, "content differs"
    assert got["ContentType"] == "text/plain", got["ContentType"]


def listing():
    s3.put_object(Bucket=bucket, Key="list/one", Body=b"1")
    s3.put_object(Bucket=bucket, Key="list/two", Body=b"22")
    keys = {o["Key"]: o["Size"] for o in s3.list_objects_v2(Bucket=bucket, Prefix="list/").get("Contents", [])}
    assert keys == {"list/one": 1, "list/two": 2}, keys


def delete():
    s3.put_object(Bucket=bucket, Key="gone", Body=b"x")
    s3.delete_object(Bucket=bucket, Key="gone")
    try:
        s3.get_object(Bucket=bucket, Key="gone")
    except ClientError as error:
        assert error.response["Error"]["Code"] == "NoSuchKey", error.response
        return
    raise AssertionError("deleted object still there")


def multipart():
    data = os.urandom(20 * 1024 * 1024)
    config = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024, max_concurrency=4)
    s3.upload_fileobj(io.BytesIO(data), bucket, "big/20MiB.bin", Config=config)
    head = s3.head_object(Bucket=bucket, Key="big/20MiB.bin")
    assert head["ContentLength"] == len(data), head["ContentLength"]
    assert head["ETag"].endswith('-4"'), head["ETag"]
    out = io.BytesIO()
    s3.download_fileobj(bucket, "big/20MiB.bin", out, Config=config)
    assert hashlib.sha256(out.getvalue()).hexdigest() == hashlib.sha256(data).hexdigest(), "content differs"


def other_bucket_refused():
    try:
        s3.get_object(Bucket="not-my-bucket", Key="x")
    except ClientError as error:
        assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 403, error.response
        assert error.response["ResponseMetadata"]["HTTPHeaders"].get("x-credgate-error") == "bucket-not-allowed"
        return
    raise AssertionError("another bucket was reachable")


check("put and get (key with space, plus, unicode)", put_get)
check("list_objects_v2 with a prefix", listing)
check("delete", delete)
check("20 MiB multipart upload and ranged download", multipart)
check("another bucket is refused (403, nothing sent)", other_bucket_refused)
print(f"s3-boto3: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
