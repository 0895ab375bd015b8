import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Sandbox
import Testing

@testable import CredGate

/// `PUT /credgate/v1/wriftai/files/{name}` (issue 10, item 5): WriftAI's whole upload in one call, through real
/// sockets, against ``FakeWriftAI`` (an API port and a storage port, like the platform and its presigned storage).
@Suite struct WriftAIUploadTests {
    static let partSize = 1 << 20
    static let endpoint = "/credgate/v1/wriftai/files/"

    /// A gateway whose WriftAI route (`/v1/**`, the bearer token injected) lends the endpoint its upstream and
    /// credentials.
    static func withGateway(
        flow: WriftAIUploadConfig.Flow = .threeStep, failures: [Int: Int] = [:], mounted: Bool = false,
        _ body: (GatewayFixture, FakeWriftAI) async throws -> Void
    ) async throws {
        let fake = try await FakeWriftAI.start(partSize: partSize, failures: failures)
        // Mounted as the WriftAI profile is: base URL .../v1, clients' /v1/... paths lose the mount.
        let upstream =
            mounted
            ? TestConfig.upstream("wriftai", url: fake.apiURL + "/v1") { $0.mount = "/v1" }
            : TestConfig.upstream("wriftai", url: fake.apiURL)
        var config = GatewayConfig(
            upstreams: ["wriftai": upstream],
            credentials: [
                "wriftai_token": CredentialConfig(
                    name: "wriftai_token",
                    kind: .apiKey(header: "authorization", value: Secret("Bearer \(FakeWriftAI.token)")))
            ],
            routes: [
                RouteConfig(
                    name: "wriftai-api", methods: nil, path: try PathPattern("/v1/**"), upstream: "wriftai",
                    credentials: ["wriftai_token"])
            ])
        config.listen.port = 0
        config.listen.threads = 2
        var upload = WriftAIUploadConfig(flow: flow)
        upload.partRetries = 2
        config.endpoints.wriftaiUpload = upload
        do {
            try await GatewayFixture.with(config: config) { f in try await body(f, fake) }
        } catch {
            try? await fake.shutdown()
            throw error
        }
        try await fake.shutdown()
    }

    static func problemCode(_ r: SimpleResponse) -> String? { r.headers.first(name: "x-credgate-error") }

    /// The three-step flow as the fake saw it: `/uploads` and `complete` with the bearer token, every part `PUT`
    /// without it, each with its exact length and the file's type, and the file whole at the end.
    static func expectThreeSteps(_ fake: FakeWriftAI, _ answer: SimpleResponse, file: [UInt8], mimeType: String) throws
    {
        #expect(answer.status == .created, "\(answer.text)")
        let json = try answer.json()
        let id = try #require(json["id"] as? String, "\(answer.text)")
        #expect(json["size"] as? Int == file.count)
        #expect(json["mime_type"] as? String == mimeType)
        #expect(
            (json["download_url"] as? String)?.hasPrefix("http://127.0.0.1:\(fake.storagePort)/files/\(id)") == true)
        #expect(fake.file(id) == file, "the platform holds the file whole")

        let api = fake.apiRequests
        #expect(api.map(\.path) == ["/v1/uploads", "/v1/uploads/\(id)/complete"])
        for request in api { #expect(request.headers.first(name: "authorization") == "Bearer \(FakeWriftAI.token)") }
        let start = try #require(try JSONSerialization.jsonObject(with: Data(api[0].body)) as? [String: Any])
        #expect(start["size"] as? Int == file.count)
        #expect(start["mime_type"] as? String == mimeType)

        let parts = fake.storageRequests.filter { $0.method == .PUT }
        let count = (file.count + partSize - 1) / partSize
        #expect(Set(parts.map(\.path)) == Set((0..<count).map { "/parts/\(id)/\($0)" }))
        for part in parts {
            #expect(!part.headers.contains(name: "authorization"), "no bearer token on a presigned URL")
            #expect(part.headers.first(name: "content-type") == mimeType)
            #expect(part.headers.first(name: "content-length") == String(part.body.count))
            #expect(!part.headers.contains(name: "transfer-encoding"))
        }
    }

    @Test func contentLengthUploadGoesUpInPartsAndCompletes() async throws {
        try await Self.withGateway { f, fake in
            let file = Samples.pdf(Self.partSize * 3 + 12_345)
            let answer = try await sendBytes(.PUT, f.base + Self.endpoint + "report.pdf", body: file)
            try Self.expectThreeSteps(fake, answer, file: file, mimeType: "application/pdf")
            #expect(fake.storageRequests.count == 4)
        }
    }

    @Test func mountedUpstreamCompletesThroughTheMount() async throws {
        try await Self.withGateway(mounted: true) { f, fake in
            let file = Samples.pdf(Self.partSize + 3)
            let answer = try await sendBytes(.PUT, f.base + Self.endpoint + "report.pdf", body: file)
            try Self.expectThreeSteps(fake, answer, file: file, mimeType: "application/pdf")
        }
    }

    @Test func chunkedUploadIsSpooledToLearnItsSize() async throws {
        try await Self.withGateway { f, fake in
            var file = Array("id,value\n".utf8)
            while file.count < Self.partSize * 2 + 7 { file += Array("\(file.count),x\n".utf8) }
            let answer = try await sendBytes(.PUT, f.base + Self.endpoint + "data.csv", body: file, chunked: true)
            try Self.expectThreeSteps(fake, answer, file: file, mimeType: "text/csv")
        }
    }

    @Test func oneStepFlowOfSDK028() async throws {
        try await Self.withGateway(flow: .oneStep) { f, fake in
            let file = Samples.pdf(Self.partSize + 99)
            let answer = try await sendBytes(.PUT, f.base + Self.endpoint + "report%20one.pdf", body: file)
            #expect(answer.status == .created, "\(answer.text)")
            let json = try answer.json()
            #expect(json["size"] as? Int == file.count)
            #expect(json["mime_type"] as? String == "application/pdf")
            #expect(json["id"] is NSNull)
            let api = fake.apiRequests
            #expect(api.map(\.path) == ["/v1/files/urls"])
            #expect(api.first?.headers.first(name: "authorization") == "Bearer \(FakeWriftAI.token)")
            let start = try #require(try JSONSerialization.jsonObject(with: Data(api[0].body)) as? [String: Any])
            #expect(start["name"] as? String == "report one.pdf")
            #expect(start["resource"] as? String == "prediction")
            #expect(start["size"] as? Int == file.count)
            let puts = fake.storageRequests
            #expect(puts.count == 1)
            #expect(puts.first?.headers.contains(name: "authorization") == false)
            #expect(puts.first?.headers.first(name: "content-length") == String(file.count))
            #expect(puts.first?.body == file)
            #expect((json["download_url"] as? String)?.contains("/files/file_") == true)
        }
    }

    @Test func pngNamedPdfIsRefusedBeforeAnythingLeaves() async throws {
        try await Self.withGateway { f, fake in
            for chunked in [false, true] {
                let answer = try await sendBytes(
                    .PUT, f.base + Self.endpoint + "scan.pdf", body: Samples.png, chunked: chunked)
                #expect(answer.status.code == 415, "\(answer.text)")
                #expect(Self.problemCode(answer) == "upload-content-mismatch")
                #expect(answer.headers.first(name: "content-type") == "application/problem+json")
            }
            #expect(fake.apiRequests.isEmpty)
            #expect(fake.storageRequests.isEmpty)
        }
    }

    @Test func emptyFileAndBadNameAreRefused() async throws {
        try await Self.withGateway { f, fake in
            let empty = try await sendBytes(.PUT, f.base + Self.endpoint + "empty.txt", body: [])
            #expect(empty.status.code == 422, "\(empty.text)")
            #expect(Self.problemCode(empty) == "upload-empty-file")
            let bad = try await sendBytes(.PUT, f.base + Self.endpoint + "a%09b.txt", body: Array("x".utf8))
            #expect(bad.status.code == 422, "\(bad.text)")
            #expect(Self.problemCode(bad) == "upload-invalid-filename")
            #expect(fake.apiRequests.isEmpty)
        }
    }

    @Test func aPartThatFailsOnceIsSentAgain() async throws {
        try await Self.withGateway(failures: [1: 1]) { f, fake in
            let file = Samples.pdf(Self.partSize * 3 + 1)
            let answer = try await sendBytes(.PUT, f.base + Self.endpoint + "report.pdf", body: file)
            try Self.expectThreeSteps(fake, answer, file: file, mimeType: "application/pdf")
            let id = try #require(try answer.json()["id"] as? String)
            #expect(fake.storageRequests.filter { $0.path == "/parts/\(id)/1" }.count == 2)
            #expect(fake.storageRequests.count == 5)
        }
    }

    @Test func aPartThatFailsEveryRetryIsUploadIncomplete() async throws {
        try await Self.withGateway(failures: [2: 3]) { f, fake in
            let file = Samples.pdf(Self.partSize * 3 + 1)
            let answer = try await sendBytes(.PUT, f.base + Self.endpoint + "report.pdf", body: file)
            #expect(answer.status == .badGateway, "\(answer.text)")
            #expect(Self.problemCode(answer) == "upload-incomplete")
            #expect(answer.headers.first(name: "content-type") == "application/problem+json")
            let json = try answer.json()
            #expect(json["upload_id"] as? String == "upl_1")
            #expect(json["failed_parts"] as? [Int] == [3])
            #expect(json["part_count"] as? Int == 4)
            #expect(
                fake.storageRequests.filter { $0.path == "/parts/upl_1/2" }.count == 3, "the first send and two retries"
            )
            #expect(!fake.apiRequests.contains { $0.path.hasSuffix("/complete") }, "never completed")
            #expect(!answer.text.contains("X-Signature"), "no presigned URL in the problem")
            #expect(!answer.text.contains(FakeWriftAI.token))
        }
    }

    @Test func curlUploadsWithT() async throws {
        try await Self.withGateway { f, fake in
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
                "credgate-wriftai-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            let file = Samples.pdf(Self.partSize * 2 + 500)
            let path = dir.appendingPathComponent("report.pdf")
            try Data(file).write(to: path)
            let result = try await runTool([
                "curl", "-sS", "-T", path.path, "-w", "\n%{http_code}", f.base + Self.endpoint + "report.pdf",
            ])
            #expect(result.status == 0)
            let lines = result.output.split(separator: "\n")
            #expect(lines.last == "201", "\(result.output)")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(lines.first!.utf8)) as? [String: Any])
            let id = try #require(json["id"] as? String)
            #expect(fake.file(id) == file)
            #expect(json["size"] as? Int == file.count)
        }
    }

    // MARK: - Streaming part by part (a body with Content-Length)

    /// Opens a raw connection and sends the head of `PUT {endpoint}{name}` with `Content-Length: total` and the
    /// first bytes of the body; the caller sends the rest (or closes).
    static func startUpload(port: Int, name: String, total: Int, first: [UInt8]) async throws -> (
        any Channel, RawClient.Collector
    ) {
        let collector = RawClient.Collector(until: nil)
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        let head =
            "PUT \(endpoint)\(name) HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/octet-stream\r\n"
            + "Content-Length: \(total)\r\n\r\n"
        var buffer = ByteBuffer(string: head)
        buffer.writeBytes(first)
        try await channel.writeAndFlush(buffer)
        return (channel, collector)
    }

    /// Waits (generously: a loaded 2-core machine) until `condition` holds; false if it never did.
    static func eventually(_ seconds: Int = 30, _ condition: () -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(50))
        }
        return condition()
    }

    /// The first part reaches the storage while the client has not sent the rest: the body streams through part by
    /// part instead of being spooled whole first (with spooling, the first part would wait for the last byte).
    @Test func contentLengthBodyStreamsPartByPartAsItArrives() async throws {
        try await Self.withGateway { f, fake in
            let file = Samples.pdf(Self.partSize * 3 + 12_345)
            let split = Self.partSize + Self.partSize / 2
            let (channel, collector) = try await Self.startUpload(
                port: f.port, name: "report.pdf", total: file.count, first: Array(file[..<split]))
            let firstPartStored = try await Self.eventually {
                fake.storageRequests.contains {
                    $0.method == .PUT && $0.path.hasSuffix("/0") && $0.body.count == Self.partSize
                }
            }
            #expect(firstPartStored, "the first part went up before the client sent the rest")
            #expect(fake.apiRequests.map(\.path) == ["/v1/uploads"], "the first call went out at the first bytes")
            try await channel.writeAndFlush(ByteBuffer(bytes: file[split...]))
            _ = try await Self.eventually {
                collector.snapshot().1.contains("\r\n\r\n{") && collector.snapshot().1.hasSuffix("}")
            }
            try? await channel.close()
            let text = collector.snapshot().1
            #expect(text.firstStatus == 201, "\(text)")
            let body = String(text[text.range(of: "\r\n\r\n")!.upperBound...])
            let json = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
            let id = try #require(json["id"] as? String)
            #expect(fake.file(id) == file, "the platform holds the file whole")
            #expect(json["size"] as? Int == file.count)
            let answer = SimpleResponse(status: .created, headers: [:], body: ByteBuffer(string: body))
            try Self.expectThreeSteps(fake, answer, file: file, mimeType: "application/pdf")
        }
    }

    /// A client that goes away mid-upload: the part being sent is cut off, the upload is never completed, and the
    /// gateway goes on serving.
    @Test func aClientThatLeavesMidUploadIsNeverCompleted() async throws {
        try await Self.withGateway { f, fake in
            let file = Samples.pdf(Self.partSize * 3)
            let split = Self.partSize + Self.partSize / 2
            let (channel, _) = try await Self.startUpload(
                port: f.port, name: "report.pdf", total: file.count, first: Array(file[..<split]))
            #expect(try await Self.eventually { fake.storageRequests.contains { $0.path.hasSuffix("/0") } })
            try await channel.close()
            // The part in flight is cut off at the storage (its PUT connection closed), not left waiting.
            #expect(
                try await Self.eventually { fake.cutOffRequests.contains { $0.hasSuffix("/1") } },
                "\(fake.cutOffRequests)")
            #expect(!fake.apiRequests.contains { $0.path.hasSuffix("/complete") }, "never completed")
            #expect(!fake.storageRequests.contains { $0.path.hasSuffix("/1") }, "the cut-off part never arrived whole")
            // The gateway still serves a whole upload.
            let next = Samples.pdf(Self.partSize + 5)
            let answer = try await sendBytes(.PUT, f.base + Self.endpoint + "next.pdf", body: next)
            #expect(answer.status == .created, "\(answer.text)")
        }
    }

    // MARK: - End to end, against the WriftAI sandbox (presigned URLs with signatures, expiry, exact lengths)

    /// A gateway in front of ``WriftAISandboxServer``: `/v1/**` with the bearer token, the endpoint configured.
    static func withSandbox(
        flow: WriftAIUploadConfig.Flow = .threeStep, _ body: (GatewayFixture, WriftAISandboxServer) async throws -> Void
    ) async throws {
        let sandbox = try await WriftAISandboxServer.start(WriftAISandboxOptions(accessToken: FakeWriftAI.token))
        var config = GatewayConfig(
            upstreams: ["wriftai": TestConfig.upstream("wriftai", url: sandbox.baseURL)],
            credentials: [
                "wriftai_token": CredentialConfig(
                    name: "wriftai_token",
                    kind: .apiKey(header: "authorization", value: Secret("Bearer \(FakeWriftAI.token)")))
            ],
            routes: [
                RouteConfig(
                    name: "wriftai-api", methods: nil, path: try PathPattern("/v1/**"), upstream: "wriftai",
                    credentials: ["wriftai_token"])
            ])
        config.listen.port = 0
        config.listen.threads = 2
        config.endpoints.wriftaiUpload = WriftAIUploadConfig(flow: flow)
        do {
            try await GatewayFixture.with(config: config) { f in try await body(f, sandbox) }
        } catch {
            try? await sandbox.shutdown()
            throw error
        }
        try await sandbox.shutdown()
    }

    @Test func sandboxThreeStepUploadOfSeveralParts() async throws {
        try await Self.withSandbox { f, sandbox in
            let file = Samples.pdf(256 * 1024 * 5 + 777) // six parts of the sandbox's 256 KiB
            for chunked in [false, true] {
                let answer = try await sendBytes(
                    .PUT, f.base + Self.endpoint + "report.pdf", body: file, chunked: chunked)
                #expect(answer.status == .created, "\(answer.text)")
                let id = try #require(try answer.json()["id"] as? String, "\(answer.text)")
                let stored = try #require(await sandbox.storedObject(key: "uploads/\(id)"))
                #expect(stored.bytes == file)
                #expect(stored.contentType == "application/pdf")
                // The download URL the platform signed works as given.
                let url = try #require(try answer.json()["download_url"] as? String)
                let download = try await send(.GET, url)
                #expect(download.status == .ok)
                #expect(Array(download.body.readableBytesView) == file)
            }
            let counters = await sandbox.counters()
            #expect(counters.partPuts == 12)
            #expect(counters.putRejections == 0)
            #expect(counters.completes == 2)
            let puts = await sandbox.recorder.all().filter { $0.method == "PUT" }
            #expect(puts.count == 12)
            #expect(puts.allSatisfy { $0.header("authorization") == nil }, "no bearer token on a presigned URL")
        }
    }

    @Test func sandboxOneStepUpload() async throws {
        try await Self.withSandbox(flow: .oneStep) { f, sandbox in
            let file = Array("hello, wriftai\n".utf8) + Array(repeating: UInt8(ascii: "x"), count: 300_000)
            let answer = try await sendBytes(.PUT, f.base + Self.endpoint + "notes.txt", body: file)
            #expect(answer.status == .created, "\(answer.text)")
            #expect(try answer.json()["mime_type"] as? String == "text/plain")
            let url = try #require(try answer.json()["download_url"] as? String)
            let download = try await send(.GET, url)
            #expect(download.status == .ok)
            #expect(Array(download.body.readableBytesView) == file)
            let counters = await sandbox.counters()
            #expect(counters.singlePuts == 1)
            #expect(counters.putRejections == 0)
        }
    }
}
