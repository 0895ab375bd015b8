import Testing

@testable import CredGate

@Suite struct S3URITests {
    static let longBucket = String(repeating: "a", count: 63)
    static let longKey = String(repeating: "k", count: 1018) + "é.pdf" // 1018 + 2 + 4 = 1024 bytes of UTF-8

    @Test(arguments: [
        ("s3://assured-bucket/docs/1b4e-c9.pdf", "assured-bucket", "docs/1b4e-c9.pdf"),
        ("s3://abc/k", "abc", "k"),
        ("s3://123/k", "123", "k"),
        ("s3://my.bucket-name.v2/a/b/c.pdf", "my.bucket-name.v2", "a/b/c.pdf"),
        ("s3://bucket//leading/slash", "bucket", "/leading/slash"),
        ("s3://bucket/100%25?x=1#frag", "bucket", "100%25?x=1#frag"), // a key, not a URL: kept as written
        ("s3://bucket/ключ-ü.pdf", "bucket", "ключ-ü.pdf"),
        ("s3://\(longBucket)/\(longKey)", longBucket, longKey),
        ("s3://1.2.3/k", "1.2.3", "k"), // three numbers is not an IP address
        ("s3://1.2.3.4x/k", "1.2.3.4x", "k"),
    ])
    func valid(text: String, bucket: String, key: String) throws {
        let uri = try S3URI(parsing: text)
        #expect(uri.bucket == bucket)
        #expect(uri.key == key)
        #expect(uri.description == text)
        #expect(S3URI(validating: text) == uri)
    }

    @Test(arguments: [
        ("", S3URI.Problem.empty),
        ("https://bucket/key", .notS3Scheme),
        ("S3://bucket/key", .notS3Scheme),
        ("bucket/key", .notS3Scheme),
        ("s3://bucket/key\n", .forbiddenCharacter("\n", position: 16)),
        ("s3://bucket/my key.pdf", .forbiddenCharacter(" ", position: 15)),
        (" s3://bucket/key", .forbiddenCharacter(" ", position: 1)),
        ("s3://bucket/a\tb", .forbiddenCharacter("\t", position: 14)),
        ("s3://bucket/a\u{7}b", .forbiddenCharacter("\u{7}", position: 14)),
        ("s3://bucket/a\u{A0}b", .forbiddenCharacter("\u{A0}", position: 14)),
        ("s3://bucket/a\r\nb", .forbiddenCharacter("\r", position: 14)),
        ("s3://", .missingBucket),
        ("s3:///key", .missingBucket),
        ("s3://bucket", .missingKey),
        ("s3://bucket/", .missingKey),
        ("s3://b/k", .bucketLength("b", 1)),
        ("s3://ab/k", .bucketLength("ab", 2)),
        ("s3://\(longBucket)a/k", .bucketLength(longBucket + "a", 64)),
        ("s3://My-Bucket/k", .bucketCharacter("My-Bucket", "M")),
        ("s3://my_bucket/k", .bucketCharacter("my_bucket", "_")),
        ("s3://bücket/k", .bucketCharacter("bücket", "ü")),
        ("s3://bucket:443/k", .bucketCharacter("bucket:443", ":")),
        ("s3://-bucket/k", .bucketEdge("-bucket")),
        ("s3://bucket-/k", .bucketEdge("bucket-")),
        ("s3://.bucket/k", .bucketEdge(".bucket")),
        ("s3://my..bucket/k", .bucketAdjacentDots("my..bucket")),
        ("s3://192.168.5.4/k", .bucketIPAddress("192.168.5.4")),
        ("s3://xn--bucket/k", .bucketReservedPrefix("xn--bucket", "xn--")),
        ("s3://sthree-bucket/k", .bucketReservedPrefix("sthree-bucket", "sthree-")),
        ("s3://amzn-s3-demo-bucket/k", .bucketReservedPrefix("amzn-s3-demo-bucket", "amzn-s3-demo-")),
        ("s3://mine-s3alias/k", .bucketReservedSuffix("mine-s3alias", "-s3alias", usedFor: "access point aliases")),
        (
            "s3://mine--ol-s3/k",
            .bucketReservedSuffix("mine--ol-s3", "--ol-s3", usedFor: "Object Lambda access point aliases")
        ),
        ("s3://mine.mrap/k", .bucketReservedSuffix("mine.mrap", ".mrap", usedFor: "Multi-Region Access Points")),
        (
            "s3://b--usw2-az1--x-s3/k",
            .bucketReservedSuffix("b--usw2-az1--x-s3", "--x-s3", usedFor: "directory buckets")
        ),
        ("s3://bucket/" + String(repeating: "k", count: 1025), .keyTooLong(bytes: 1025)),
        ("s3://bucket/" + String(repeating: "é", count: 513), .keyTooLong(bytes: 1026)),
    ])
    func invalid(text: String, problem: S3URI.Problem) {
        #expect(throws: problem) { try S3URI(parsing: text) }
        #expect(S3URI(validating: text) == nil)
        // Every reason is one sentence a person can act on.
        let reason = problem.description
        #expect(reason.hasPrefix("The "))
        #expect(reason.hasSuffix("."))
        #expect(!reason.contains("\n"))
    }

    @Test func reasonsReadAsSentences() {
        #expect(
            S3URI.Problem.forbiddenCharacter(" ", position: 15).description
                == "The S3 URI contains a space at character 15; S3 URIs may not contain spaces, line breaks or other "
                + "whitespace or control characters.")
        #expect(
            S3URI.Problem.forbiddenCharacter("\u{7}", position: 3).description.contains(
                "a control character (U+0007)"))
        #expect(
            S3URI.Problem.forbiddenCharacter("\u{A0}", position: 3).description.contains(
                "a whitespace character (U+00A0)"))
        #expect(
            S3URI.Problem.bucketCharacter("My-Bucket", "M").description
                == "The bucket name \"My-Bucket\" contains \"M\" (bucket names are all lowercase); bucket names may only "
                + "contain lowercase letters, digits, dots and hyphens.")
        #expect(
            S3URI.Problem.bucketLength("b", 1).description
                == "The bucket name \"b\" is 1 character long; bucket names are 3 to 63 characters long.")
        #expect(
            S3URI.Problem.missingKey.description
                == "The S3 URI names a bucket but no object; expected s3://<bucket>/<key> with a key after the bucket name."
        )
        #expect(
            S3URI.Problem.keyTooLong(bytes: 1025).description
                == "The object key is 1025 bytes long in UTF-8; S3 object keys are at most 1024 bytes.")
    }

    @Test func equalURIsAreOneKey() throws {
        let a = try S3URI(parsing: "s3://bucket/key.pdf")
        let b = try S3URI(parsing: "s3://bucket/key.pdf")
        let c = try S3URI(parsing: "s3://bucket/Key.pdf")
        #expect(Set([a, b, c]).count == 2)
    }
}
