import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Sandbox
import Testing

/// The Assured sandbox on its own, through real sockets on an ephemeral loopback port.
@Suite("Sandbox")
struct SandboxTests {
    static let apiKey = "sandbox-test-key-0123456789"

    // MARK: API key

    @Test func requestsWithoutOrWithAWrongKeyGet401AndAreRecorded() async throws {
        try await withSandbox { sandbox, client in
            let missing = try await client.sandboxSend(
                .GET, sandbox.baseURL + "/api/v1/users/providers-list/", key: nil)
            #expect(missing.status.code == 401)
            #expect(try await missing.sandboxObject() as? [String: String] == ["detail": "Invalid API key"])
            #expect(missing.headers.first(name: "content-type") == "application/json")

            let wrong = try await client.sandboxSend(
                .GET, sandbox.baseURL + "/api/v1/users/providers-list/?limit=5", key: "nope")
            #expect(wrong.status.code == 401)

            // A key differing only in its last byte, and a doubled header holding the right key, fail too.
            let almost = try await client.sandboxSend(
                .GET, sandbox.baseURL + "/api/v1/x/", key: String(Self.apiKey.dropLast()) + "X")
            #expect(almost.status.code == 401)
            var doubled = HTTPClientRequest(url: sandbox.baseURL + "/api/v1/x/")
            doubled.headers.add(name: "x-api-key", value: Self.apiKey)
            doubled.headers.add(name: "x-api-key", value: Self.apiKey)
            #expect(try await client.execute(doubled, timeout: .seconds(10)).status.code == 401)

            // A rejected upload is not read, and the connection still serves the next request.
            let upload = try await client.sandboxSend(
                .POST, sandbox.baseURL + "/api/v1/files/handle/", key: "nope",
                body: Array(repeating: 0x41, count: 300_000))
            #expect(upload.status.code == 401)
            let after = try await client.sandboxSend(.GET, sandbox.baseURL + "/api/v1/users/providers-list/")
            #expect(after.status.code == 200)

            let all = await sandbox.recorder.all()
            #expect(all.count == 6)
            #expect(all[0].method == "GET")
            #expect(all[0].uri == "/api/v1/users/providers-list/")
            #expect(all[0].header("x-api-key") == nil)
            #expect(all[0].bodyBytes == 0 && all[0].bodySHA256 == nil)
            #expect(all[1].uri == "/api/v1/users/providers-list/?limit=5")
            #expect(all[1].header("x-api-key") == "nope")
            #expect(all[4].method == "POST" && all[4].bodyBytes == 0 && all[4].bodySHA256 == nil)
            #expect(await sandbox.recorder.count(path: "/api/v1/users/providers-list/") == 3)
        }
    }

    // MARK: Pagination

    @Test func providersListPagesWithAbsoluteLinks() async throws {
        try await withSandbox { sandbox, client in
            let list = sandbox.baseURL + "/api/v1/users/providers-list/"

            let first = try await client.sandboxSend(.GET, list).sandboxObject()
            #expect(first["count"] as? Int == 57)
            #expect(first["previous"] is NSNull)
            #expect(first["next"] as? String == list + "?limit=10&offset=10")
            let firstResults = try #require(first["results"] as? [[String: Any]])
            #expect(firstResults.count == 10)
            for provider in firstResults {
                for field in ["id", "first_name", "last_name", "npi", "email"] {
                    #expect(provider[field] is String, "missing \(field)")
                }
                #expect(UUID(uuidString: provider["id"] as? String ?? "") != nil)
                #expect((provider["npi"] as? String)?.count == 10)
            }

            // Fields in the platform's order, compact, like DRF's renderer.
            let raw = try await client.sandboxSend(.GET, list + "?limit=1").body.collect(upTo: 1 << 20)
            let text = String(decoding: raw.readableBytesView, as: UTF8.self)
            #expect(
                text.hasPrefix(
                    "{\"count\":57,\"next\":\"\(list)?limit=1&offset=1\",\"previous\":null,\"results\":[{\"id\":\""))

            // Follow `next` to the end: every provider once, the last page's `next` is null.
            var ids: [String] = []
            var url: String? = list
            var pages = 0
            var lastPage: [String: Any] = [:]
            while let current = url {
                #expect(current.hasPrefix(sandbox.baseURL + "/"), "link not absolute: \(current)")
                lastPage = try await client.sandboxSend(.GET, current).sandboxObject()
                ids += (lastPage["results"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
                url = lastPage["next"] as? String
                pages += 1
            }
            #expect(pages == 6)
            #expect(ids.count == 57 && Set(ids).count == 57)
            #expect(lastPage["next"] is NSNull)
            #expect(lastPage["previous"] as? String == list + "?limit=10&offset=40")

            // DRF details: offset falls off `previous` when it would reach 0; limit is capped at 100;
            // other parameters are kept, keys sorted, values re-encoded.
            let second = try await client.sandboxSend(.GET, list + "?offset=5").sandboxObject()
            #expect(second["previous"] as? String == list + "?limit=10")
            #expect(second["next"] as? String == list + "?limit=10&offset=15")
            let capped = try await client.sandboxSend(.GET, list + "?limit=500").sandboxObject()
            #expect((capped["results"] as? [Any])?.count == 57)
            #expect(capped["next"] is NSNull)
            let tail = try await client.sandboxSend(.GET, list + "?zeta=a%20b&limit=25&offset=50&active=true")
                .sandboxObject()
            #expect((tail["results"] as? [Any])?.count == 7)
            #expect(tail["next"] is NSNull)
            #expect(tail["previous"] as? String == list + "?active=true&limit=25&offset=25&zeta=a+b")
            let bad = try await client.sandboxSend(.GET, list + "?limit=0&offset=x").sandboxObject()
            #expect((bad["results"] as? [Any])?.count == 10)
            #expect(bad["next"] as? String == list + "?limit=10&offset=10")

            // The links follow the request's Host, as the platform's do.
            var viaGateway = HTTPClientRequest(url: list + "?limit=20")
            viaGateway.headers.add(name: "Host", value: "gateway.local:8443")
            viaGateway.headers.add(name: "x-api-key", value: Self.apiKey)
            let proxied = try await client.execute(viaGateway, timeout: .seconds(10)).sandboxObject()
            #expect(
                proxied["next"] as? String
                    == "http://gateway.local:8443/api/v1/users/providers-list/?limit=20&offset=20")

            // Ids are the same in every sandbox.
            try await withSandbox { other, otherClient in
                let again = try await otherClient.sandboxSend(
                    .GET, other.baseURL + "/api/v1/users/providers-list/?limit=100"
                ).sandboxObject()
                let otherIds = (again["results"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? String }
                #expect(otherIds == ids)
            }
        }
    }

    // MARK: Echo

    @Test func echoReportsMethodPathAndQueryByteExact() async throws {
        try await withSandbox { sandbox, _ in
            let cases: [(method: String, target: String, path: String, query: String?)] = [
                (
                    "GET", "/api/v1/users/provider-personal-info/a%2Fb/?x=1&x=2&y=%2F&z&w=",
                    "/api/v1/users/provider-personal-info/a%2Fb/", "x=1&x=2&y=%2F&z&w="
                ),
                ("PATCH", "/api/v1/credentialing/requests/42/", "/api/v1/credentialing/requests/42/", nil),
                ("GET", "/api/v1/credentialing/requests/42", "/api/v1/credentialing/requests/42", nil),
                ("PUT", "/api/v1//double//slash/?", "/api/v1//double//slash/", ""),
                ("OPTIONS", "/api/v1/clients/?q=%E2%9C%93+plus%2Bsign", "/api/v1/clients/", "q=%E2%9C%93+plus%2Bsign"),
            ]
            for c in cases {
                let body: [UInt8] = c.method == "GET" ? [] : Array("{\"a\":1}".utf8)
                let reply = try await RawHTTP.exchange(
                    port: sandbox.port,
                    head:
                        "\(c.method) \(c.target) HTTP/1.1\r\nHost: 127.0.0.1:\(sandbox.port)\r\nx-api-key: \(Self.apiKey)\r\n"
                        + "Content-Length: \(body.count)\r\nConnection: close\r\n\r\n",
                    body: body
                )
                #expect(reply.status == 200, "\(c.target)")
                let echo = try #require(try JSONSerialization.jsonObject(with: Data(reply.body)) as? [String: Any])
                #expect(echo["method"] as? String == c.method)
                #expect(echo["path"] as? String == c.path)
                if let query = c.query {
                    #expect(echo["query"] as? String == query)
                } else {
                    #expect(echo["query"] is NSNull)
                }
                #expect(echo["body_bytes"] as? Int == body.count)
                #expect(echo["body_sha256"] as? String == SHA256.hash(data: body).sandboxHex)
                let recorded = try #require(await sandbox.recorder.last())
                #expect(recorded.uri == c.target)
                #expect(recorded.method == c.method)
                #expect(recorded.bodyBytes == body.count)
                #expect(recorded.bodySHA256 == SHA256.hash(data: body).sandboxHex)
            }

            // Headers are recorded in arrival order with their case; Host first.
            _ = try await RawHTTP.exchange(
                port: sandbox.port,
                head:
                    "GET /api/v1/h/ HTTP/1.1\r\nX-B: 1\r\nhost: example.test\r\nx-api-key: \(Self.apiKey)\r\nX-A: 2\r\nx-b: 3\r\nConnection: close\r\n\r\n"
            )
            let recorded = try #require(await sandbox.recorder.last())
            #expect(
                recorded.headers == [
                    ["Host", "example.test"], ["X-B", "1"], ["x-api-key", Self.apiKey], ["X-A", "2"], ["x-b", "3"],
                    ["Connection", "close"],
                ])
            #expect(recorded.headerValues("x-b") == ["1", "3"])
        }
    }

    @Test func echoHashesA20MiBUploadWhileStreaming() async throws {
        try await withSandbox { sandbox, client in
            let size = 20 * 1024 * 1024 + 777
            let expected = SeededChunks.sha256Hex(seed: 42, total: size)
            var request = HTTPClientRequest(url: sandbox.baseURL + "/api/v1/files/handle/?name=big.pdf")
            request.method = .POST
            request.headers.add(name: "x-api-key", value: Self.apiKey)
            // The upload route needs the session JWT as well as the key.
            request.headers.add(
                name: "Authorization", value: "Bearer \(try await SandboxSessionTests.login(client, sandbox))")
            request.headers.add(name: "content-type", value: "application/octet-stream")
            request.body = .stream(SeededChunks(seed: 42, total: size), length: .known(Int64(size)))
            let response = try await client.execute(request, timeout: .seconds(120))
            #expect(response.status.code == 200)
            let echo = try await response.sandboxObject()
            #expect(echo["method"] as? String == "POST")
            #expect(echo["path"] as? String == "/api/v1/files/handle/")
            #expect(echo["query"] as? String == "name=big.pdf")
            #expect(echo["body_bytes"] as? Int == size)
            #expect(echo["body_sha256"] as? String == expected)
            let recorded = try #require(await sandbox.recorder.last())
            #expect(recorded.bodyBytes == size)
            #expect(recorded.bodySHA256 == expected)
        }
    }

    // MARK: Download

    @Test func payloadHelpersAgree() {
        for offset in [0, 1, 255, 256, 65_535, 65_536, 1 << 33 + 17] {
            let bytes = SandboxPayload.bytes(offset: offset, count: 1_000)
            #expect(bytes == (0..<1_000).map { SandboxPayload.byte(at: offset + $0) })
        }
        #expect(SandboxPayload.byte(at: 0) == 7 && SandboxPayload.byte(at: 1) == 38 && SandboxPayload.byte(at: 9) == 30)
        let small = (0..<100_003).map { SandboxPayload.byte(at: $0) }
        #expect(SandboxPayload.sha256Hex(count: 100_003) == SHA256.hash(data: small).sandboxHex)
    }

    @Test(arguments: [20 * 1024 * 1024, 100_003, 0])
    func downloadStreamsDeterministicBytes(size: Int) async throws {
        try await withSandbox { sandbox, client in
            let response = try await client.sandboxSend(
                .GET, sandbox.baseURL + "/api/v1/sandbox/download/?bytes=\(size)")
            #expect(response.status.code == 200)
            #expect(response.headers.first(name: "content-length") == String(size))
            #expect(response.headers.first(name: "content-type") == "application/octet-stream")
            // Hash as it arrives, checking against an expectation computed chunk by chunk alongside.
            var received = SHA256()
            var reference = SHA256()
            var count = 0
            for try await buffer in response.body {
                let expected = SandboxPayload.bytes(offset: count, count: buffer.readableBytes)
                reference.update(data: expected)
                buffer.withUnsafeReadableBytes { received.update(bufferPointer: $0) }
                count += buffer.readableBytes
            }
            #expect(count == size)
            #expect(received.finalize().sandboxHex == reference.finalize().sandboxHex)
        }
    }

    @Test func headOfADownloadGivesItsLengthWithoutTheBody() async throws {
        try await withSandbox { sandbox, _ in
            let reply = try await RawHTTP.exchange(
                port: sandbox.port,
                head:
                    "HEAD /api/v1/sandbox/download/?bytes=5000000000 HTTP/1.1\r\nHost: x\r\nx-api-key: \(Self.apiKey)\r\nConnection: close\r\n\r\n"
            )
            #expect(reply.status == 200)
            #expect(reply.head.lowercased().contains("content-length: 5000000000"))
            #expect(reply.body.isEmpty)
        }
    }

    @Test func downloadWithoutAValidSizeIs400() async throws {
        try await withSandbox { sandbox, client in
            let missing = try await client.sandboxSend(.GET, sandbox.baseURL + "/api/v1/sandbox/download/")
            #expect(missing.status.code == 400)
            #expect(try await missing.sandboxObject()["bytes"] as? [String] == ["This field is required."])
            let negative = try await client.sandboxSend(.GET, sandbox.baseURL + "/api/v1/sandbox/download/?bytes=-1")
            #expect(negative.status.code == 400)
        }
    }

    // MARK: Other routes

    @Test func deletingAPracticeLocationProviderAnswers204() async throws {
        try await withSandbox { sandbox, client in
            let response = try await client.sandboxSend(
                .DELETE,
                sandbox.baseURL + "/api/v1/users/practice-location-provider/3f0c9a52-1f7e-4a1b-9c11-2b1a8f3e9d10/")
            #expect(response.status.code == 204)
            #expect(response.headers.first(name: "content-length") == nil)
            #expect(response.headers.first(name: "transfer-encoding") == nil)
            #expect(try await response.body.collect(upTo: 1024).readableBytes == 0)
            #expect(await sandbox.recorder.last()?.method == "DELETE")

            // Without the id segment it is not that route: the echo answers.
            let other = try await client.sandboxSend(
                .DELETE, sandbox.baseURL + "/api/v1/users/practice-location-provider/")
            #expect(other.status.code == 200)
        }
    }

    @Test func controlEndpointsListAndResetTheRecorder() async throws {
        try await withSandbox { sandbox, client in
            _ = try await client.sandboxSend(.GET, sandbox.baseURL + "/api/v1/users/providers-list/?limit=2")
            _ = try await client.sandboxSend(
                .POST, sandbox.baseURL + "/api/v1/users/invite-providers/", body: Array("[{}]".utf8))
            let outside = try await client.sandboxSend(.GET, sandbox.baseURL + "/api/v2/nothing/", key: nil)
            #expect(outside.status.code == 404)
            #expect(try await outside.sandboxObject()["detail"] as? String == "Not found.")

            let health = try await client.sandboxSend(.GET, sandbox.baseURL + "/sandbox/healthz", key: nil)
            #expect(health.status.code == 200)

            // The control endpoints need no key and are not recorded themselves.
            let listed = try await client.sandboxSend(.GET, sandbox.baseURL + "/sandbox/requests", key: nil)
            #expect(listed.status.code == 200)
            let decoded = try JSONDecoder().decode(
                [RecordedRequest].self, from: Data(try await listed.body.collect(upTo: 1 << 20).readableBytesView))
            #expect(
                decoded.map(\.uri) == [
                    "/api/v1/users/providers-list/?limit=2", "/api/v1/users/invite-providers/", "/api/v2/nothing/",
                ])
            #expect(decoded[1].bodyBytes == 4)
            #expect(decoded[1].bodySHA256 == SHA256.hash(data: Array("[{}]".utf8)).sandboxHex)
            #expect(decoded == (await sandbox.recorder.all()))

            let reset = try await client.sandboxSend(.DELETE, sandbox.baseURL + "/sandbox/requests", key: nil)
            #expect(reset.status.code == 204)
            #expect(await sandbox.recorder.all().isEmpty)
            #expect(await sandbox.recorder.last() == nil)

            _ = try await client.sandboxSend(.GET, sandbox.baseURL + "/api/v1/a/")
            await sandbox.recorder.reset()
            #expect(await sandbox.recorder.count(path: "/api/v1/a/") == 0)

            #expect(try await client.sandboxSend(.GET, sandbox.baseURL + "/sandbox/other", key: nil).status.code == 404)
        }
    }

    @Test func recorderKeepsTheLatest1000() async {
        let recorder = RequestRecorder()
        for i in 0..<1_005 {
            await recorder.record(RecordedRequest(method: "GET", uri: "/api/v1/n/\(i % 2)/?i=\(i)", headers: []))
        }
        let all = await recorder.all()
        #expect(all.count == 1_000)
        #expect(all.first?.uri == "/api/v1/n/1/?i=5")
        #expect(all.last?.uri == "/api/v1/n/0/?i=1004")
        #expect(await recorder.last()?.uri == "/api/v1/n/0/?i=1004")
        #expect(await recorder.count(path: "/api/v1/n/0/") == 500)
    }

    @Test func startsOnEphemeralPortsAndShutsDown() async throws {
        let a = try await SandboxServer.start(SandboxOptions(apiKey: Self.apiKey))
        let b = try await SandboxServer.start(SandboxOptions(apiKey: Self.apiKey))
        #expect(a.port > 0 && b.port > 0 && a.port != b.port)
        #expect(a.baseURL == "http://127.0.0.1:\(a.port)")
        // The port is taken while a runs: a second sandbox on it fails to start.
        await #expect(throws: (any Error).self) {
            let clash = try await SandboxServer.start(SandboxOptions(apiKey: Self.apiKey, port: a.port))
            try await clash.shutdown()
        }
        try await a.shutdown()
        try await b.shutdown()
        // Once shut down, the port refuses connections.
        await #expect(throws: (any Error).self) {
            _ = try await RawHTTP.exchange(
                port: a.port, head: "GET /sandbox/healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        }
    }

    // MARK: Helpers

    /// Starts a sandbox and a client, runs `body`, and always shuts both down.
    func withSandbox(_ body: (SandboxServer, HTTPClient) async throws -> Void) async throws {
        try await withSandboxAndClient(SandboxOptions(apiKey: Self.apiKey), body)
    }
}

extension HTTPClient {
    /// Sends a request with the test key (or the given one; nil sends none).
    fileprivate func sandboxSend(
        _ method: HTTPMethod, _ url: String, key: String? = SandboxTests.apiKey, body: [UInt8]? = nil
    ) async throws -> HTTPClientResponse {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let key { request.headers.add(name: "x-api-key", value: key) }
        if let body { request.body = .bytes(body) }
        return try await execute(request, timeout: .seconds(30))
    }
}

extension HTTPClientResponse {
    fileprivate enum SandboxJSONError: Error { case notAnObject }

    /// The body parsed as a JSON object.
    fileprivate func sandboxObject() async throws -> [String: Any] {
        let buffer = try await body.collect(upTo: 16 << 20)
        guard let object = try JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any]
        else {
            throw SandboxJSONError.notAnObject
        }
        return object
    }
}

extension Sequence where Element == UInt8 {
    fileprivate var sandboxHex: String { map { String(format: "%02x", $0) }.joined() }
}

extension SandboxTests {
    /// A deterministic pseudo-random body, generated chunk by chunk (SplitMix64), so a big upload never sits in memory.
    struct SeededChunks: AsyncSequence, Sendable {
        typealias Element = ByteBuffer
        let seed: UInt64
        let total: Int
        static let chunkSize = 61_440 // not a power of two, so chunk edges fall anywhere on the server side

        struct AsyncIterator: AsyncIteratorProtocol {
            var state: UInt64
            var remaining: Int
            mutating func next() async -> ByteBuffer? {
                guard remaining > 0 else { return nil }
                let n = Swift.min(remaining, SeededChunks.chunkSize)
                remaining -= n
                var buffer = ByteBuffer()
                buffer.writeBytes(SeededChunks.bytes(state: &state, count: n))
                return buffer
            }
        }

        func makeAsyncIterator() -> AsyncIterator { AsyncIterator(state: seed, remaining: total) }

        static func bytes(state: inout UInt64, count: Int) -> [UInt8] {
            var out = [UInt8](repeating: 0, count: count)
            var i = 0
            while i < count {
                state &+= 0x9E37_79B9_7F4A_7C15
                var z = state
                z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
                z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
                z ^= z >> 31
                for k in 0..<8 where i + k < count {
                    out[i + k] = UInt8(truncatingIfNeeded: z >> (8 * UInt64(k)))
                }
                i += 8
            }
            return out
        }

        static func sha256Hex(seed: UInt64, total: Int) -> String {
            var hasher = SHA256()
            var state = seed
            var remaining = total
            while remaining > 0 {
                let n = Swift.min(remaining, chunkSize)
                hasher.update(data: bytes(state: &state, count: n))
                remaining -= n
            }
            return hasher.finalize().sandboxHex
        }
    }

    /// One HTTP/1.1 exchange over a plain blocking socket, for targets and header orders no client library rewrites.
    /// It runs on its own thread so it never blocks the concurrency pool the sandbox's handlers need.
    enum RawHTTP {
        struct Reply {
            var status: Int
            var head: String
            var body: [UInt8]
        }

        enum Failure: Error {
            case socket(Int32)
            case connect(Int32)
            case malformed(String)
        }

        static func exchange(port: Int, head: String, body: [UInt8] = []) async throws -> Reply {
            try await withCheckedThrowingContinuation { continuation in
                let thread = Thread {
                    continuation.resume(
                        with: Result { try exchangeBlocking(port: port, bytes: Array(head.utf8) + body) })
                }
                thread.start()
            }
        }

        private static func exchangeBlocking(port: Int, bytes: [UInt8]) throws -> Reply {
            // POSIX calls are module-qualified: a test helper named `send` elsewhere in this module would shadow them.
            #if canImport(Glibc)
                let fd = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            #else
                let fd = Darwin.socket(AF_INET, SOCK_STREAM, 0)
            #endif
            guard fd >= 0 else { throw Failure.socket(errno) }
            defer { _ = sysClose(fd) }
            var timeout = timeval(tv_sec: 10, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            let connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sysConnect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
                }
            }
            guard connected == 0 else { throw Failure.connect(errno) }
            var sent = 0
            while sent < bytes.count {
                let n = bytes.withUnsafeBytes { sysSend(fd, $0.baseAddress! + sent, $0.count - sent, 0) }
                guard n > 0 else { throw Failure.socket(errno) }
                sent += n
            }
            var received: [UInt8] = []
            var chunk = [UInt8](repeating: 0, count: 65_536)
            while true {
                let n = chunk.withUnsafeMutableBytes { sysRecv(fd, $0.baseAddress!, $0.count, 0) }
                if n < 0 { throw Failure.socket(errno) }
                if n == 0 { break }
                received += chunk[0..<n]
            }
            guard let split = received.firstRange(of: Array("\r\n\r\n".utf8)) else {
                throw Failure.malformed(String(decoding: received, as: UTF8.self))
            }
            let head = String(decoding: received[..<split.lowerBound], as: UTF8.self)
            let statusText = head.split(separator: " ", maxSplits: 2).dropFirst().first.map(String.init) ?? ""
            guard let status = Int(statusText) else { throw Failure.malformed(head) }
            return Reply(status: status, head: head, body: Array(received[split.upperBound...]))
        }
    }
}

#if canImport(Glibc)
    private let sysConnect = Glibc.connect
    private let sysSend = Glibc.send
    private let sysRecv = Glibc.recv
    private let sysClose = Glibc.close
#else
    private let sysConnect = Darwin.connect
    private let sysSend = Darwin.send
    private let sysRecv = Darwin.recv
    private let sysClose = Darwin.close
#endif
