import Foundation
import Testing

@testable import CredGate

/// Reference URLs made once by botocore 1.43.11 (`generate_presigned_url('get_object', ..., ExpiresIn=3600)` for
/// `s3://assured-bucket/docs/license 1.pdf` in us-east-2, credentials AKIDEXAMPLE, clock fixed at
/// 2026-11-21T10:15:00Z = 1795256100; `signature_version` `s3v4` and `s3`, with and without a session token).
enum PresignBotocoreVectors {
    static let signedAt = Date(timeIntervalSince1970: 1_795_256_100)
    static let expiresAt = Date(timeIntervalSince1970: 1_795_259_700)

    static let sigV4 =
        "https://assured-bucket.s3.us-east-2.amazonaws.com/docs/license%201.pdf?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261121%2Fus-east-2%2Fs3%2Faws4_request&X-Amz-Date=20261121T101500Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=35a829d767aed105cb716e0fe40bbfdec4985b9fcb950ad8c964c743dcfab907"
    static let sigV4Token =
        "https://assured-bucket.s3.us-east-2.amazonaws.com/docs/license%201.pdf?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261121%2Fus-east-2%2Fs3%2Faws4_request&X-Amz-Date=20261121T101500Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Security-Token=FQoGZXIvYXdzE%2B%2Ftoken%3D&X-Amz-Signature=98ba41b1998fbe92e1d3f9e2459071f1328428eca1f1b447e43453eb274979ee"
    static let sigV2 =
        "https://assured-bucket.s3.us-east-2.amazonaws.com/docs/license%201.pdf?AWSAccessKeyId=AKIDEXAMPLE&Signature=Zl9wCSZzl2oYZmgXHrQC%2BvtPFvc%3D&Expires=1795259700"
    static let sigV2Token =
        "https://assured-bucket.s3.us-east-2.amazonaws.com/docs/license%201.pdf?AWSAccessKeyId=AKIDEXAMPLE&Signature=Oy%2FVZMGTuLzZ3CSRSvwagD83zDw%3D&x-amz-security-token=FQoGZXIvYXdzE%2B%2Ftoken%3D&Expires=1795259700"

    /// A SigV4 URL in the same shape, signed at 2026-11-21T10:15:00Z (``signedAt``) for `expires` seconds.
    static func sigV4(expires: Int, token: Bool = false) -> String {
        "https://assured-bucket.s3.us-east-2.amazonaws.com/docs/a.pdf?X-Amz-Algorithm=AWS4-HMAC-SHA256"
            + "&X-Amz-Credential=AKIDEXAMPLE%2F20261121%2Fus-east-2%2Fs3%2Faws4_request&X-Amz-Date=20261121T101500Z"
            + "&X-Amz-Expires=\(expires)&X-Amz-SignedHeaders=host"
            + (token ? "&X-Amz-Security-Token=FQoGZXIvYXdzE%2B%2Ftoken%3D" : "")
            + "&X-Amz-Signature=" + String(repeating: "ab", count: 32)
    }
}

@Suite struct PresignCacheExpiryTests {
    typealias V = PresignBotocoreVectors

    @Test func sigV4FromBotocore() throws {
        let expiry = try #require(PresignedURLExpiry(url: V.sigV4))
        #expect(expiry.form == .sigV4)
        #expect(expiry.signedAt == V.signedAt)
        #expect(expiry.expiresAt == V.expiresAt)
        #expect(!expiry.usesTemporaryCredentials)
    }

    @Test func sigV4WithSecurityToken() throws {
        let expiry = try #require(PresignedURLExpiry(url: V.sigV4Token))
        #expect(expiry.form == .sigV4)
        #expect(expiry.expiresAt == V.expiresAt)
        #expect(expiry.usesTemporaryCredentials)
        // Temporary credentials may lapse first: the lower ceiling applies, from receipt.
        let received = V.signedAt.addingTimeInterval(2)
        #expect(
            expiry.expiry(receivedAt: received, maximumLifetime: 86_400, temporaryCredentialsMaximumLifetime: 600)
                == received.addingTimeInterval(600))
        #expect(expiry.expiry(receivedAt: received, maximumLifetime: 86_400) == V.expiresAt)
    }

    @Test func sigV2FromBotocore() throws {
        let expiry = try #require(PresignedURLExpiry(url: V.sigV2))
        #expect(expiry.form == .sigV2)
        #expect(expiry.expiresAt == V.expiresAt)
        #expect(expiry.signedAt == nil)
        #expect(!expiry.usesTemporaryCredentials)
        let withToken = try #require(PresignedURLExpiry(url: V.sigV2Token))
        #expect(withToken.expiresAt == V.expiresAt)
        #expect(withToken.usesTemporaryCredentials)
    }

    @Test func valuesArePercentDecoded() throws {
        // `%5A` is "Z", `%33` is "3": decoded before they are read.
        let url =
            "https://h/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20261121T101500%5A&X-Amz-Expires=%33600"
            + "&X-Amz-Signature=abc"
        #expect(PresignedURLExpiry(url: url)?.expiresAt == V.expiresAt)
        let v2 = "https://h/k?AWSAccessKeyId=AK%49D&Signature=a%2Bb%3D&Expires=%31795259700#fragment"
        #expect(PresignedURLExpiry(url: v2)?.expiresAt == V.expiresAt)
    }

    @Test func fragmentAndParameterOrderDoNotMatter() {
        let url =
            "https://h/k?X-Amz-Signature=abc&X-Amz-Expires=3600&X-Amz-Date=20261121T101500Z"
            + "&X-Amz-Algorithm=AWS4-HMAC-SHA256#X-Amz-Expires=1"
        #expect(PresignedURLExpiry(url: url)?.expiresAt == V.expiresAt)
    }

    static let v4Base = "https://h/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abc"

    @Test(arguments: [
        "",
        "https://assured-bucket.s3.amazonaws.com/docs/a.pdf",
        "not a url at all",
        // SigV4 with a field missing or empty
        "\(v4Base)&X-Amz-Expires=3600",
        "\(v4Base)&X-Amz-Date=20261121T101500Z",
        "\(v4Base)&X-Amz-Date=&X-Amz-Expires=3600",
        "https://h/k?X-Amz-Signature=abc&X-Amz-Date=20261121T101500Z&X-Amz-Expires=3600",
        "https://h/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20261121T101500Z&X-Amz-Expires=3600",
        "https://h/k?X-Amz-Algorithm=HMAC-SHA256&X-Amz-Signature=abc&X-Amz-Date=20261121T101500Z&X-Amz-Expires=3600",
        // keys are case-sensitive, as AWS writes them
        "\(v4Base)&x-amz-date=20261121T101500Z&x-amz-expires=3600",
        // malformed or out-of-range values
        "\(v4Base)&X-Amz-Date=20261121T101500Z&X-Amz-Expires=0",
        "\(v4Base)&X-Amz-Date=20261121T101500Z&X-Amz-Expires=604801",
        "\(v4Base)&X-Amz-Date=20261121T101500Z&X-Amz-Expires=-5",
        "\(v4Base)&X-Amz-Date=20261121T101500Z&X-Amz-Expires=+5",
        "\(v4Base)&X-Amz-Date=20261121T101500Z&X-Amz-Expires=1h",
        "\(v4Base)&X-Amz-Date=20261121T101500Z&X-Amz-Expires=99999999999999999999",
        "\(v4Base)&X-Amz-Date=20261321T101500Z&X-Amz-Expires=3600",
        "\(v4Base)&X-Amz-Date=20260229T101500Z&X-Amz-Expires=3600",
        "\(v4Base)&X-Amz-Date=20261121T241500Z&X-Amz-Expires=3600",
        "\(v4Base)&X-Amz-Date=2026-11-21T10:15:00Z&X-Amz-Expires=3600",
        "\(v4Base)&X-Amz-Date=20261121T101500&X-Amz-Expires=3600",
        "\(v4Base)&X-Amz-Date=20261121T101500Z&X-Amz-Expires=%ZZ",
        // repeated: which one S3 would use is not ours to guess
        "\(v4Base)&X-Amz-Date=20261121T101500Z&X-Amz-Expires=3600&X-Amz-Expires=60",
        // SigV2 with a field missing or malformed
        "https://h/k?Signature=abc&Expires=1795259700",
        "https://h/k?AWSAccessKeyId=AKID&Expires=1795259700",
        "https://h/k?AWSAccessKeyId=AKID&Signature=abc",
        "https://h/k?AWSAccessKeyId=AKID&Signature=abc&Expires=0",
        "https://h/k?AWSAccessKeyId=AKID&Signature=abc&Expires=1795259700.5",
        "https://h/k?AWSAccessKeyId=AKID&Signature=abc&Expires=999999999999999",
        "https://h/k?AWSAccessKeyId=AKID&Signature=abc&expires=1795259700",
        // both forms at once
        "\(v4Base)&X-Amz-Date=20261121T101500Z&X-Amz-Expires=3600&AWSAccessKeyId=AKID&Expires=1795259700",
    ])
    func unreadableExpiryIsNil(url: String) {
        #expect(PresignedURLExpiry(url: url) == nil)
        #expect(PresignedURLExpiry.expiry(of: url, receivedAt: V.signedAt, maximumLifetime: 3600) == nil)
    }

    @Test func amzDateIsUTCAndKnowsLeapYears() {
        #expect(PresignedURLExpiry.amzDate("20240229T235959Z") == Date(timeIntervalSince1970: 1_709_251_199))
        #expect(PresignedURLExpiry.amzDate("19991231T000000Z") == Date(timeIntervalSince1970: 946_598_400))
        #expect(PresignedURLExpiry.amzDate("19700101T000000Z") == Date(timeIntervalSince1970: 0))
        #expect(PresignedURLExpiry.amzDate("21000229T000000Z") == nil) // 2100 is not a leap year
        #expect(PresignedURLExpiry.amzDate("20000229T000000Z") != nil) // 2000 is
    }

    @Test func cappedByTheConfiguredMaximum() {
        let received = V.signedAt.addingTimeInterval(1)
        // The URL's own expiry when it comes first...
        #expect(
            PresignedURLExpiry.expiry(of: V.sigV4, receivedAt: received, maximumLifetime: 86_400)
                == V.expiresAt)
        #expect(
            PresignedURLExpiry.expiry(of: V.sigV2, receivedAt: received, maximumLifetime: 86_400)
                == V.expiresAt)
        // ...else the ceiling, counted from receipt.
        #expect(
            PresignedURLExpiry.expiry(of: V.sigV4, receivedAt: received, maximumLifetime: 600)
                == received.addingTimeInterval(600))
        #expect(
            PresignedURLExpiry.expiry(of: V.sigV2, receivedAt: received, maximumLifetime: 600)
                == received.addingTimeInterval(600))
        // The temporary-credentials ceiling applies only when a token is present.
        #expect(
            PresignedURLExpiry.expiry(
                of: V.sigV4, receivedAt: received, maximumLifetime: 86_400, temporaryCredentialsMaximumLifetime: 60)
                == V.expiresAt)
        #expect(
            PresignedURLExpiry.expiry(
                of: V.sigV2Token, receivedAt: received, maximumLifetime: 86_400, temporaryCredentialsMaximumLifetime: 60
            )
                == received.addingTimeInterval(60))
        // A week-long SigV4 URL, the longest S3 accepts, is readable and capped.
        let week = PresignBotocoreVectors.sigV4(expires: 604_800)
        #expect(PresignedURLExpiry(url: week)?.expiresAt == V.signedAt.addingTimeInterval(604_800))
        #expect(
            PresignedURLExpiry.expiry(of: week, receivedAt: received, maximumLifetime: 3600)
                == received.addingTimeInterval(3600))
    }
}

@Suite struct PresignCacheWindowTests {
    @Test(arguments: [
        (3_600.0, 360.0), // an hour: 10%, so served for 54 minutes
        (6, 3), // 60 s would be more than half: half, served for 3 seconds
        (300, 60), // 10% is 30 s: raised to 60 s
        (100, 50), // 60 s is more than half: half
        (120, 60),
        (36_000, 3_600), // 10 h: 10%
        (604_800, 60_480), // a week
        (0, 0),
        (-5, 0),
    ])
    func margin(lifetime: TimeInterval, margin: TimeInterval) {
        #expect(PresignServingWindow.margin(lifetime: lifetime) == margin)
    }

    @Test func servedUntilTheMarginBeforeExpiry() {
        let received = Date(timeIntervalSince1970: 1_795_256_100)
        #expect(
            PresignServingWindow.serveUntil(receivedAt: received, expiresAt: received.addingTimeInterval(3600))
                == received.addingTimeInterval(54 * 60))
        #expect(
            PresignServingWindow.serveUntil(receivedAt: received, expiresAt: received.addingTimeInterval(6))
                == received.addingTimeInterval(3))
        // Already expired, or expiring on arrival: not cached at all.
        #expect(PresignServingWindow.serveUntil(receivedAt: received, expiresAt: received) == nil)
        #expect(
            PresignServingWindow.serveUntil(receivedAt: received, expiresAt: received.addingTimeInterval(-1))
                == nil)
    }
}
