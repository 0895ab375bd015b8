import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import Testing

@testable import CredGate

/// The S3 profile through real sockets: links minted locally (nothing forwarded, every bad request a 422), the
/// download redirect from the presign cache, and the signing route re-signing for the configured bucket only.
@Suite struct S3GatewayTests {
    static let environment = [
        "AWS_ACCESS_KEY_ID": "AKIDREALKEY", "AWS_SECRET_ACCESS_KEY": "real-secret-9c1f",
        "AWS_SESSION_TOKEN": "session-token-77",
        "AWS_DEFAULT_REGION": "eu-west-1", "S3_BUCKET": "app-bucket", "S3_KEY_PREFIX": "uploads/",
    ]

    /// Config/s3.yaml itself, pointed at `upstreamPort`, on a free port.
    static func withGateway(upstreamPort: Int, _ body: (String) async throws -> Void) async throws {
        let yaml = try String(
            contentsOf: URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                .appendingPathComponent("../../Config/s3.yaml").standardized, encoding: .utf8)
        var env = environment
        env["S3_ENDPOINT_URL"] = "http://127.0.0.1:\(upstreamPort)"
        var config = try ConfigLoader.parse(yaml: yaml, environment: env)
        config.listen.port = 0
        config.listen.threads = 1
        let gateway = try await Gateway.start(config: config, logger: testLogger)
        do {
            try await body("http://127.0.0.1:\(gateway.port)")
        } catch {
            try? await gateway.shutdown()
            throw error
        }
        try await gateway.shutdown()
    }

    static func post(_ url: String, _ json: String) async throws -> (HTTPClientResponse, String) {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "content-type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: json))
        let response = try await httpClient.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 20)
        return (response, String(buffer: body))
    }

    @Test func uploadLinkKeepsTheExtensionAndSignsTheContentType() async throws {
        let upstream = try await TestUpstream.start { _ in .respond(.ok) }
        try await Self.withGateway(upstreamPort: upstream.port) { base in
            let (response, body) = try await Self.post(
                base + "/credgate/v1/s3/links",
                #"{"operation": "upload", "filename": "../../etc/Report Final.PDF", "content_type": "application/pdf", "expires_in": 600}"#
            )
            #expect(response.status == .ok)
            let answer = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
            let key = try #require(answer["key"] as? String)
            #expect(key.hasPrefix("uploads/") && key.hasSuffix(".PDF") && key.count == "uploads/".count + 36 + 4)
            #expect(answer["method"] as? String == "PUT")
            #expect((answer["headers"] as? [String: String]) == ["Content-Type": "application/pdf"])
            let url = try #require(answer["url"] as? String)
            #expect(
                url.hasPrefix("http://127.0.0.1:\(upstream.port)/app-bucket/\(key)?X-Amz-Algorithm=AWS4-HMAC-SHA256"))
            #expect(url.contains("X-Amz-Expires=600") && url.contains("X-Amz-SignedHeaders=content-type%3Bhost"))
            #expect(
                url.contains("X-Amz-Security-Token=session-token-77") && url.contains("X-Amz-Credential=AKIDREALKEY%2F")
            )
            #expect(answer["expires_at"] is String)
        }
        #expect(upstream.requests == 0)
        try await upstream.shutdown()
    }

    @Test func everyBadLinksRequestIsA422AndNothingIsSigned() async throws {
        let upstream = try await TestUpstream.start { _ in .respond(.ok) }
        let bad = [
            "", "[]", "{}", #"{"operation": "copy", "key": "uploads/a"}"#, #"{"operation": "download"}"#,
            #"{"operation": "download", "key": "other/a.pdf"}"#, #"{"operation": "download", "key": "uploads/../a"}"#,
            #"{"operation": "download", "key": "uploads/a", "expires_in": 0}"#,
            #"{"operation": "download", "key": "uploads/a", "expires_in": -5}"#,
            #"{"operation": "download", "key": "uploads/a", "expires_in": 604801}"#,
            #"{"operation": "download", "key": "uploads/a", "expires_in": 1.5}"#,
            #"{"operation": "download", "key": "uploads/a", "expire_minutes": 10081}"#,
            #"{"operation": "download", "key": "uploads/a", "expires_in": 60, "expire_minutes": 1}"#,
            #"{"operation": "download", "filename": "a.pdf"}"#, #"{"operation": "upload", "filename": "..."}"#,
            #"{"operation": "upload", "key": "uploads/a", "filename": "b"}"#,
            #"{"operation": "upload", "key": "uploads/a", "bucket": "x"}"#,
            #"{"operation": "remove", "key": "uploads/a", "content_type": "text/plain"}"#,
            #"{"operation": "upload", "key": "uploads/a", "download_filename": "x.pdf"}"#,
            #"{"operation": "upload", "key": "uploads/a", "content_type": "text/plain\r\nx: y"}"#,
        ]
        try await Self.withGateway(upstreamPort: upstream.port) { base in
            for json in bad {
                let (response, body) = try await Self.post(base + "/credgate/v1/s3/links", json)
                #expect(response.status == .unprocessableEntity, "\(json)")
                #expect(response.headers.first(name: "x-credgate-error") == "invalid-link-request", "\(json)")
                #expect(!body.contains("X-Amz-Signature") && !body.contains("real-secret"), "\(json)")
            }
            let download = try await httpClient.execute(
                HTTPClientRequest(url: base + "/credgate/v1/s3/download/other/a.pdf"), timeout: .seconds(30))
            #expect(download.status == .unprocessableEntity)
        }
        #expect(upstream.requests == 0)
        try await upstream.shutdown()
    }

    @Test func downloadRedirectIsServedFromThePresignCache() async throws {
        let upstream = try await TestUpstream.start { _ in .respond(.ok) }
        try await Self.withGateway(upstreamPort: upstream.port) { base in
            let noRedirects = HTTPClient(
                eventLoopGroupProvider: .singleton, configuration: .init(redirectConfiguration: .disallow))
            let url = base + "/credgate/v1/s3/download/uploads/a%20b%2Bc.pdf?filename=Quarterly%20report.pdf"
            let first = try await noRedirects.execute(
                HTTPClientRequest(url: base + "/credgate/v1/s3/download/uploads/report.pdf"), timeout: .seconds(30))
            #expect(first.status == .found)
            #expect(first.headers.first(name: "x-cache") == "MISS")
            let second = try await noRedirects.execute(
                HTTPClientRequest(url: base + "/credgate/v1/s3/download/uploads/report.pdf"), timeout: .seconds(30))
            #expect(second.headers.first(name: "x-cache") == "HIT")
            #expect(second.headers.first(name: "location") == first.headers.first(name: "location"))
            let named = try await noRedirects.execute(HTTPClientRequest(url: url), timeout: .seconds(30))
            let location = try #require(named.headers.first(name: "location"))
            #expect(
                location.hasPrefix(
                    "http://127.0.0.1:\(upstream.port)/app-bucket/uploads/a%20b%2Bc.pdf?response-content-disposition=attachment%3B%20filename%3D%22Quarterly%20report.pdf%22&X-Amz-"
                ))
            try await noRedirects.shutdown()
        }
        #expect(upstream.requests == 0)
        try await upstream.shutdown()
    }

    @Test func signingRouteResignsForTheBucketOnly() async throws {
        let seen = NIOLockedValueBox<[HTTPRequestHead]>([])
        let upstream = try await TestUpstream.start { request in
            seen.withLockedValue { $0.append(request.head) }
            return .respond(.ok, body: "stored")
        }
        try await Self.withGateway(upstreamPort: upstream.port) { base in
            var put = HTTPClientRequest(url: base + "/app-bucket/dir/a%20b+c.txt?x-id=PutObject")
            put.method = .PUT
            put.headers.add(
                name: "authorization",
                value:
                    "AWS4-HMAC-SHA256 Credential=dummy/20240101/us-east-1/s3/aws4_request, SignedHeaders=host, Signature=00"
            )
            put.headers.add(name: "x-amz-date", value: "20240101T000000Z")
            put.headers.add(name: "x-amz-security-token", value: "client-token")
            put.headers.add(name: "x-amz-content-sha256", value: "UNSIGNED-PAYLOAD")
            put.headers.add(name: "x-amz-meta-colour", value: "blue")
            put.headers.add(name: "content-type", value: "text/plain")
            put.body = .bytes(ByteBuffer(string: "hello"))
            let response = try await httpClient.execute(put, timeout: .seconds(30))
            #expect(response.status == .ok)

            var other = HTTPClientRequest(url: base + "/other-bucket/a.txt")
            other.method = .GET
            let refused = try await httpClient.execute(other, timeout: .seconds(30))
            #expect(refused.status == .forbidden)
            #expect(refused.headers.first(name: "x-credgate-error") == "bucket-not-allowed")
            let list = try await httpClient.execute(HTTPClientRequest(url: base + "/"), timeout: .seconds(30))
            #expect(list.status == .forbidden)
        }
        let heads = seen.withLockedValue { $0 }
        try #require(heads.count == 1)
        let head = heads[0]
        #expect(head.uri == "/app-bucket/dir/a%20b%2Bc.txt?x-id=PutObject")
        // A small body is signed with its hash.
        #expect(head.headers.first(name: "x-amz-content-sha256") == AWSSigV4.hexSHA256(Array("hello".utf8)))
        #expect(head.headers["x-amz-security-token"] == ["session-token-77"])
        let authorization = try #require(head.headers.first(name: "authorization"))
        #expect(authorization.hasPrefix("AWS4-HMAC-SHA256 Credential=AKIDREALKEY/"))
        #expect(
            authorization.contains(
                "/eu-west-1/s3/aws4_request, SignedHeaders=content-type;host;x-amz-content-sha256;x-amz-date;x-amz-meta-colour;x-amz-security-token, Signature="
            ))
        // The signature is the one AWS computes for what arrived.
        let credentials = AWSSigV4.Credentials(
            accessKeyID: "AKIDREALKEY", secretAccessKey: Secret("real-secret-9c1f"),
            sessionToken: Secret("session-token-77"), region: "eu-west-1")
        let amzDate = try #require(head.headers.first(name: "x-amz-date"))
        let date = try #require(Self.date(amzDate))
        let address = try AWSSigV4.S3ObjectAddress(
            endpoint: .init(scheme: "http", host: "127.0.0.1", port: upstream.port),
            bucket: "app-bucket", key: "dir/a b+c.txt", style: .path)
        let expected = AWSSigV4.sign(
            .init(
                method: "PUT", address: address, query: [.init("x-id", "PutObject")],
                headers: [.init("content-type", "text/plain"), .init("x-amz-meta-colour", "blue")],
                payloadHash: .of(Array("hello".utf8))), credentials: credentials, at: date)
        #expect(authorization == expected.authorization)
        #expect(head.headers.first(name: "host") == "127.0.0.1:\(upstream.port)")
        try await upstream.shutdown()
    }

    static func date(_ amzDate: String) -> Date? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        return formatter.date(from: amzDate)
    }
}
