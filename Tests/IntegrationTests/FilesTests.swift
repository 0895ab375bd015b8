import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Sandbox
import Testing

@testable import CredGate

/// Issue 4 through real sockets, on the shipped profile: uploads checked before they leave, the presign cache,
/// and credgate's own file endpoints.
@Suite struct FilesTests {
    typealias Fixture = SessionTests.Fixture
    static let uploadPath = "/api/v1/files/handle/"
    static let presignPath = "/api/v1/files/presign-s3-url/presign_s3_url/"
    static let presignRoute = "POST /api/v1/files/presign-s3-url/presign_s3_url/"

    // MARK: - Helpers

    static func upload(_ f: Fixture, _ body: MultipartBody, chunked: Bool = false) async throws -> SimpleResponse {
        try await sendBytes(
            .POST, f.base + uploadPath, headers: ["content-type": body.contentType], body: body.bytes, chunked: chunked)
    }

    static func presign(_ f: Fixture, _ s3URL: String) async throws -> SimpleResponse {
        try await send(
            .POST, f.base + presignPath, headers: ["content-type": "application/json"],
            body: #"{"s3_url": "\#(s3URL)", "presigned_url": ""}"#)
    }

    static func control(_ f: Fixture, _ path: String, _ json: String) async throws {
        let r = try await send(
            .POST, f.sandbox.baseURL + path, headers: ["content-type": "application/json"], body: json)
        #expect(r.status.code < 300, "\(path): \(r.text)")
    }

    static func platformCalls(_ f: Fixture, _ route: String) async -> Int {
        await f.sandbox.counters().routes[route] ?? 0
    }

    /// Runs `request` and checks that the sandbox's sockets received not one byte meanwhile.
    static func expectNothingReachesPlatform(
        _ f: Fixture, _ request: () async throws -> Void,
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws {
        let before = await f.sandbox.counters().bytesReceived
        try await request()
        // Anything on its way would have arrived by now.
        try await Task.sleep(for: .milliseconds(100))
        let after = await f.sandbox.counters().bytesReceived
        #expect(after == before, "the platform received \(after - before) bytes", sourceLocation: sourceLocation)
    }

    static func problemCode(_ r: SimpleResponse) -> String? { r.headers.first(name: "x-credgate-error") }

    // MARK: - Uploads

    @Test func aValidUploadGetsAGeneratedNameAndTheDetectedType() async throws {
        try await SessionTests.withGateway { f in
            let pdf = Samples.pdf(100_000)
            var body = MultipartBody()
            body.file("Board License.PDF", pdf, contentType: "application/octet-stream")
            body.close()
            let r = try await Self.upload(f, body)
            #expect(r.status == .created, "\(r.text)")
            let record = try r.json()
            let name = try #require(record["name"] as? String)
            #expect(
                name.hasSuffix(".pdf") && UUID(uuidString: String(name.dropLast(4))) != nil, "generated name \(name)")
            let metadata = try #require(record["storage_metadata"] as? [String: Any])
            #expect(metadata["content_type"] as? String == "application/pdf")
            #expect(metadata["sha256"] as? String == Samples.sha256(pdf))
            #expect((record["file_url"] as? String)?.hasPrefix("s3://") == true)

            // A name the client sends is kept.
            var named = MultipartBody()
            named.field("name", "my-license.pdf")
            named.file("license.pdf", pdf, contentType: "application/pdf")
            named.close()
            let r2 = try await Self.upload(f, named)
            #expect(r2.status == .created)
            #expect(try r2.json()["name"] as? String == "my-license.pdf")
        }
    }

    @Test func everyRejectionClassIsAnsweredLocallyAndThePlatformReceivesNothing() async throws {
        try await SessionTests.withGateway(configure: { config in
            let i = config.routes.firstIndex { $0.name == "assured-upload" }!
            config.routes[i].maxBodyBytes = 1024 * 1024
        }) { f in
            // Warm up: the session and a pooled connection exist, so only the request under test could add bytes.
            _ = try await send(.GET, f.base + "/api/v1/users/provider-documents/?limit=1")
            let pdf = Samples.pdf(8192)
            func form(_ build: (inout MultipartBody) -> Void) -> MultipartBody {
                var body = MultipartBody()
                build(&body)
                return body
            }
            let cases: [(String, MultipartBody, Int, String, Bool)] = [
                (
                    "png named .pdf",
                    form {
                        $0.file("scan.pdf", Samples.png)
                        $0.close()
                    }, 415, "upload-content-mismatch", false
                ),
                (
                    "renamed .docx",
                    form {
                        $0.file("cv.docx", Samples.docx)
                        $0.close()
                    }, 415, "upload-unsupported-type", false
                ),
                (
                    "docx named .pdf",
                    form {
                        $0.file("cv.pdf", Samples.docx)
                        $0.close()
                    }, 415, "upload-content-mismatch", false
                ),
                (
                    "no file part",
                    form {
                        $0.field("name", "x.pdf")
                        $0.close()
                    }, 422, "upload-missing-file", false
                ),
                (
                    "two files",
                    form {
                        $0.file("a.pdf", pdf)
                        $0.file("b.pdf", pdf, field: "file2")
                        $0.close()
                    }, 422, "upload-multiple-files", false
                ),
                (
                    "second file after a large first",
                    form {
                        $0.file("a.pdf", Samples.pdf(600_000))
                        $0.file("b.pdf", pdf, field: "other")
                        $0.close()
                    }, 422, "upload-multiple-files", true
                ),
                (
                    "empty file",
                    form {
                        $0.file("a.pdf", [])
                        $0.close()
                    }, 422, "upload-empty-file", false
                ),
                (
                    "bad name field",
                    form {
                        $0.field("name", "../../etc/passwd.pdf")
                        $0.file("a.pdf", pdf)
                        $0.close()
                    }, 422, "upload-invalid-name", false
                ),
                ("no closing boundary", form { $0.file("a.pdf", pdf) }, 400, "upload-malformed", false),
                (
                    "over the limit, chunked",
                    form {
                        $0.file("big.pdf", Samples.pdf(1_500_000))
                        $0.close()
                    }, 413, "", true
                ),
                (
                    "over the limit, declared",
                    form {
                        $0.file("big.pdf", Samples.pdf(1_500_000))
                        $0.close()
                    }, 413, "", false
                ),
            ]
            for (label, body, status, code, chunked) in cases {
                try await Self.expectNothingReachesPlatform(f) {
                    let r = try await Self.upload(f, body, chunked: chunked)
                    #expect(Int(r.status.code) == status, "\(label): \(r.status) \(r.text)")
                    #expect(r.headers.first(name: "content-type") == "application/problem+json", "\(label)")
                    if !code.isEmpty { #expect(Self.problemCode(r) == code, "\(label): \(r.text)") }
                    let detail = (try? r.json()["detail"] as? String) ?? ""
                    #expect(detail.count > 20, "\(label): a sentence, got \(detail)")
                }
            }
            // No boundary, and not multipart at all.
            try await Self.expectNothingReachesPlatform(f) {
                let r = try await sendBytes(
                    .POST, f.base + Self.uploadPath, headers: ["content-type": "multipart/form-data"], body: pdf)
                #expect(r.status == .badRequest && Self.problemCode(r) == "upload-missing-boundary", "\(r.text)")
                let r2 = try await sendBytes(
                    .POST, f.base + Self.uploadPath, headers: ["content-type": "application/pdf"], body: pdf)
                #expect(r2.status.code == 415 && Self.problemCode(r2) == "upload-not-multipart", "\(r2.text)")
            }
            // Still healthy afterwards.
            var ok = MultipartBody()
            ok.file("a.pdf", pdf)
            ok.close()
            #expect(try await Self.upload(f, ok).status == .created)
        }
    }

    @Test func anUploadIsReplayedOnceAfterA401WithinTheReplayCapAndNeverStoredTwice() async throws {
        try await SessionTests.withGateway { f in
            let small = Samples.pdf(200_000)
            var form = MultipartBody()
            form.file("small.pdf", small)
            form.close()
            // The token credgate holds is revoked: the platform answers 401, credgate logs in again and replays the
            // spooled upload once (it is under the 1 MiB replay cap).
            _ = await f.sandbox.revokeTokens()
            let logins = await f.sandbox.counters().logins
            let r = try await Self.upload(f, form)
            #expect(r.status == .created, "\(r.text)")
            #expect(
                try r.json()["storage_metadata"].flatMap { ($0 as? [String: Any])?["sha256"] as? String }
                    == Samples.sha256(small))
            #expect(await f.sandbox.counters().logins == logins + 1)
            #expect(await f.sandbox.storedObjectKeys().count == 1)

            // Over the replay cap: not sent a second time; the client is told to send it again.
            _ = await f.sandbox.revokeTokens()
            var large = MultipartBody()
            large.file("large.pdf", Samples.pdf(2_000_000))
            large.close()
            let refused = try await Self.upload(f, large)
            #expect(refused.status == .unauthorized, "\(refused.text)")
            #expect(Self.problemCode(refused) == "session-rejected-not-replayed")
            #expect(await f.sandbox.storedObjectKeys().count == 1)
            let again = try await Self.upload(f, large)
            #expect(again.status == .created)
            #expect(await f.sandbox.storedObjectKeys().count == 2)
        }
    }

    // MARK: - Presign

    @Test func presignMissThenHitWithCacheHeaders() async throws {
        try await SessionTests.withGateway { f in
            let miss = try await Self.presign(f, "s3://assured-sandbox-files/a/license.pdf")
            #expect(miss.status == .ok, "\(miss.text)")
            #expect(miss.headers.first(name: "x-cache") == "MISS")
            let url = try #require(try miss.json()["presigned_url"] as? String)
            #expect(url.contains("X-Amz-Expires=3600"))
            let hit = try await Self.presign(f, "s3://assured-sandbox-files/a/license.pdf")
            #expect(hit.status == .ok)
            #expect(hit.headers.first(name: "x-cache") == "HIT")
            #expect(try hit.json()["presigned_url"] as? String == url)
            #expect(hit.headers.first(name: "age").flatMap { Int($0) }.map { $0 >= 0 && $0 < 5 } == true)
            // An hour-long URL is served for 54 minutes.
            let maxAge = hit.headers.first(name: "cache-control").flatMap { $0.split(separator: "=").last }.flatMap {
                Int($0)
            }
            #expect(maxAge.map { $0 > 3200 && $0 <= 3240 } == true, "\(hit.headers)")
            #expect(hit.headers.first(name: "cache-control")?.hasPrefix("private") == true)
            #expect(await Self.platformCalls(f, Self.presignRoute) == 1)
            // Another file is another entry.
            #expect(
                try await Self.presign(f, "s3://assured-sandbox-files/a/other.pdf").headers.first(name: "x-cache")
                    == "MISS")
            #expect(await Self.platformCalls(f, Self.presignRoute) == 2)
        }
    }

    @Test func sigV2URLsAreCachedByTheirExpires() async throws {
        try await SessionTests.withGateway { f in
            try await Self.control(f, "/sandbox/presign", #"{"form": "v2", "lifetime_seconds": 1200}"#)
            let miss = try await Self.presign(f, "s3://assured-sandbox-files/v2.pdf")
            let url = try #require(try miss.json()["presigned_url"] as? String)
            #expect(url.contains("Expires=") && url.contains("AWSAccessKeyId="), "\(url)")
            let hit = try await Self.presign(f, "s3://assured-sandbox-files/v2.pdf")
            #expect(hit.headers.first(name: "x-cache") == "HIT")
            // 1200 s: margin 120 s, so about 1080 s.
            let maxAge = hit.headers.first(name: "cache-control").flatMap { $0.split(separator: "=").last }.flatMap {
                Int($0)
            }
            #expect(maxAge.map { $0 > 1060 && $0 <= 1080 } == true, "\(hit.headers)")
        }
    }

    /// The cache serves a URL until half-way between its arrival and its expiry (a 6 s URL for about 3 s). Checked
    /// with bounds that a stalled machine cannot break: a stall delays requests and answers, so times are taken on
    /// the side that only makes each bound harder to meet (a request's send time for "not stale", the first answer
    /// that showed a URL for its arrival).
    @Test func aShortLivedURLIsNeverServedStale() async throws {
        try await SessionTests.withGateway { f in
            try await Self.control(f, "/sandbox/presign", #"{"form": "v4", "lifetime_seconds": 6}"#)
            let file = "s3://assured-sandbox-files/short.pdf"
            let clock = ContinuousClock()
            let start = clock.now
            let end = start + .milliseconds(6_500)
            /// When the test first received each URL: the cache received it no later.
            var firstSeen: [String: Date] = [:]
            // At least 6.5 s and until a second URL was seen (a window lasts at most 3 s, so a stalled machine only
            // makes the loop longer), never more than 30 s.
            while clock.now < end || (firstSeen.count < 2 && clock.now < start + .seconds(30)) {
                let sent = Date()
                let r = try await Self.presign(f, file)
                let url = try #require(try r.json()["presigned_url"] as? String)
                let expiry = try #require(PresignedURLExpiry(url: url))
                let arrived = firstSeen[url] ?? Date()
                firstSeen[url] = arrived
                // Served only before the half-way point, which is no later than this one (the cache got the URL
                // before `arrived`), and the request was sent before it was served: never a URL past its window.
                let halfWay = arrived.addingTimeInterval(expiry.expiresAt.timeIntervalSince(arrived) / 2)
                #expect(sent < halfWay, "served \(sent.timeIntervalSince(halfWay)) s after its half-way point")
                try await Task.sleep(for: .milliseconds(250))
            }
            // Without the cache, about 26 calls in 6.5 s. With it, a new URL only when the last one's window is
            // over: each cycle (6 s minus under a second of `X-Amz-Date` rounding, halved, plus the wait for the
            // answer) lasts at least 2.5 s, so the time the loop ran holds at most 1 + elapsed / 2.5 calls (4 in
            // 6.5 s), and the loop ran until it saw 2.
            let elapsed = clock.now - start
            let most = 1 + Int(elapsed / .milliseconds(2_500))
            let calls = await Self.platformCalls(f, Self.presignRoute)
            #expect(calls >= 2 && calls <= most, "\(calls) platform calls in \(elapsed)")
            #expect(firstSeen.count == calls)
        }
    }

    @Test func hundredConcurrentIdenticalPresignsMakeOnePlatformCall() async throws {
        try await SessionTests.withGateway { f in
            try await Self.control(f, "/sandbox/presign", #"{"delay_ms": 400}"#)
            let results = try await withThrowingTaskGroup(of: (Int, String?).self) { group in
                for _ in 0..<100 {
                    group.addTask {
                        let r = try await Self.presign(f, "s3://assured-sandbox-files/shared.pdf")
                        return (Int(r.status.code), try r.json()["presigned_url"] as? String)
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            #expect(results.allSatisfy { $0.0 == 200 })
            #expect(Set(results.compactMap(\.1)).count == 1)
            #expect(await Self.platformCalls(f, Self.presignRoute) == 1)
        }
    }

    @Test func errorsAreNotCached() async throws {
        try await SessionTests.withGateway { f in
            try await Self.control(f, "/sandbox/fail-presigns", #"{"count": 1, "status": 503}"#)
            let failed = try await Self.presign(f, "s3://assured-sandbox-files/e.pdf")
            #expect(failed.status.code == 503, "\(failed.text)")
            let ok = try await Self.presign(f, "s3://assured-sandbox-files/e.pdf")
            #expect(ok.status == .ok)
            #expect(ok.headers.first(name: "x-cache") == "MISS")
            #expect(await Self.platformCalls(f, Self.presignRoute) == 2)
        }
    }

    @Test func theCacheIsBoundedLRUAndCanBeEmptied() async throws {
        try await SessionTests.withGateway(configure: { $0.presignCache.maxEntries = 3 }) { f in
            for name in ["1", "2", "3"] { _ = try await Self.presign(f, "s3://assured-sandbox-files/\(name).pdf") }
            // Touch 1, so 2 is the least recently used when 4 comes in.
            #expect(
                try await Self.presign(f, "s3://assured-sandbox-files/1.pdf").headers.first(name: "x-cache") == "HIT")
            _ = try await Self.presign(f, "s3://assured-sandbox-files/4.pdf")
            #expect(
                try await Self.presign(f, "s3://assured-sandbox-files/2.pdf").headers.first(name: "x-cache") == "MISS")
            #expect(
                try await Self.presign(f, "s3://assured-sandbox-files/4.pdf").headers.first(name: "x-cache") == "HIT")
            let status = try await send(.GET, f.base + "/credgate/status").json()
            let cache = try #require(status["presign_cache"] as? [String: Any])
            #expect(cache["entries"] as? Int == 3 && cache["capacity"] as? Int == 3)

            let cleared = try await send(.DELETE, f.base + "/credgate/v1/cache/presign")
            #expect(cleared.status == .ok)
            #expect(try cleared.json()["removed"] as? Int == 3)
            #expect(
                try await Self.presign(f, "s3://assured-sandbox-files/4.pdf").headers.first(name: "x-cache") == "MISS")
        }
    }

    @Test func invalidPresignRequestsGet422AndNothingIsForwarded() async throws {
        try await SessionTests.withGateway { f in
            _ = try await send(.GET, f.base + "/api/v1/users/provider-documents/?limit=1")
            let bodies = [
                #"{"s3_url": "s3://b/key.pdf", "presigned_url": ""}"#,
                #"{"s3_url": "https://bucket.s3.amazonaws.com/key.pdf"}"#,
                #"{"s3_url": "s3://assured-sandbox-files/"}"#,
                #"{"s3_url": "s3://assured-sandbox-files/a b.pdf"}"#,
                #"{"s3_url": "s3://Bad_Bucket/key.pdf"}"#,
                #"{"presigned_url": ""}"#,
                #"{"s3_url": 42}"#,
                #"{"s3_url": "s3://assured-sandbox-files/k.pdf", "extra": 1}"#,
                #"not json"#,
            ]
            for body in bodies {
                try await Self.expectNothingReachesPlatform(f) {
                    let r = try await send(
                        .POST, f.base + Self.presignPath, headers: ["content-type": "application/json"], body: body)
                    #expect(r.status.code == 422, "\(body): \(r.text)")
                    #expect(Self.problemCode(r) == "invalid-presign-request")
                }
            }
        }
    }

    // MARK: - credgate's own endpoints, with real curl

    @Test func curlRawUploadThenCurlDownloadRedirect() async throws {
        try await SessionTests.withGateway { f in
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
                "credgate-curl-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            let pdf = Samples.pdf(300_000)
            let file = dir.appendingPathComponent("license.pdf")
            try Data(pdf).write(to: file)

            let up = try await runTool(["curl", "-sS", "-T", file.path, f.base + "/credgate/v1/files/license.pdf"])
            #expect(up.status == 0)
            let record = try #require(
                try JSONSerialization.jsonObject(with: Data(up.output.utf8)) as? [String: Any], "\(up.output)")
            let fileURL = try #require(record["file_url"] as? String, "\(up.output)")
            let metadata = try #require(record["storage_metadata"] as? [String: Any])
            #expect(metadata["sha256"] as? String == Samples.sha256(pdf))
            #expect(metadata["content_type"] as? String == "application/pdf")
            #expect(metadata["original_filename"] as? String == "license.pdf")

            // A PNG sent as a .pdf is refused, and nothing reaches the platform.
            let png = dir.appendingPathComponent("scan.pdf")
            try Data(Samples.png).write(to: png)
            try await Self.expectNothingReachesPlatform(f) {
                let bad = try await runTool([
                    "curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-T", png.path,
                    f.base + "/credgate/v1/files/scan.pdf",
                ])
                #expect(bad.output == "415")
            }

            // The download redirect: curl -L fetches the bytes.
            let out = dir.appendingPathComponent("out.pdf")
            let down = try await runTool([
                "curl", "-sS", "-L", "-G", "--data-urlencode", "s3_url=\(fileURL)", "-o", out.path, "-w",
                "%{http_code}",
                f.base + "/credgate/v1/files/download",
            ])
            #expect(down.output == "200")
            #expect(Samples.sha256(Array(try Data(contentsOf: out))) == Samples.sha256(pdf))

            // Without -L: a 302 to the presigned URL, from the cache the second time.
            let encoded = fileURL.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!
            let redirect = try await send(.GET, f.base + "/credgate/v1/files/download?s3_url=\(encoded)")
            #expect(redirect.status == .found)
            #expect(redirect.headers.first(name: "x-cache") == "HIT")
            #expect(redirect.headers.first(name: "location")?.contains("X-Amz-Signature=") == true)
            let missing = try await send(.GET, f.base + "/credgate/v1/files/download")
            #expect(missing.status.code == 422)
        }
    }

    // MARK: - Upload and attach in one call

    @Test func uploadAndAttachInOneCallAndItsSecondStepFailing() async throws {
        try await SessionTests.withGateway { f in
            let provider = try await f.providerProfileID()
            let pdf = Samples.pdf(50_000)
            func form(provider: String?) -> MultipartBody {
                var body = MultipartBody()
                if let provider { body.field("provider", provider) }
                body.field("document_name", "Board license")
                body.field("document_type", "license")
                body.field("expiration_date", "2027-01-31")
                body.file("license.pdf", pdf, contentType: "application/pdf")
                body.close()
                return body
            }
            let endpoint = f.base + "/credgate/v1/provider-documents"
            let body = form(provider: provider)
            let r = try await sendBytes(.POST, endpoint, headers: ["content-type": body.contentType], body: body.bytes)
            #expect(r.status == .created, "\(r.text)")
            let document = try r.json()
            let documentURL = try #require(document["document_url"] as? String)
            #expect(documentURL.hasPrefix("s3://"))
            #expect(document["provider"] as? String == provider)
            #expect(document["document_name"] as? String == "Board license")
            #expect(r.headers.first(name: "x-credgate-file-url") == documentURL)

            // Missing a document field: refused before anything is uploaded.
            let incomplete = form(provider: nil)
            try await Self.expectNothingReachesPlatform(f) {
                let r = try await sendBytes(
                    .POST, endpoint, headers: ["content-type": incomplete.contentType], body: incomplete.bytes)
                #expect(r.status.code == 422 && Self.problemCode(r) == "upload-invalid-field", "\(r.text)")
            }

            // The second step fails: the answer says so and keeps the file_url; the step is retried alone.
            try await Self.control(f, "/sandbox/fail-provider-documents", #"{"count": 1, "status": 500}"#)
            let failed = try await sendBytes(
                .POST, endpoint, headers: ["content-type": body.contentType], body: body.bytes)
            #expect(failed.status.code == 502, "\(failed.text)")
            #expect(Self.problemCode(failed) == "attach-failed")
            let problem = try failed.json()
            let fileURL = try #require(problem["file_url"] as? String)
            #expect(fileURL.hasPrefix("s3://") && fileURL != documentURL)
            #expect(problem["platform_status"] as? Int == 500)
            let retry = try #require((problem["retry"] as? [String: Any])?["body"] as? [String: Any])
            #expect(retry["document_url"] as? String == fileURL)
            let retried = try await send(
                .POST, f.base + "/api/v1/users/provider-documents/", headers: ["content-type": "application/json"],
                body: String(decoding: try JSONSerialization.data(withJSONObject: retry), as: UTF8.self))
            #expect(retried.status == .created, "\(retried.text)")
        }
    }
}
