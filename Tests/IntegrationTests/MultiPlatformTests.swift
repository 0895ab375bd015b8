import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import Sandbox
import Testing

@testable import CredGate

/// Two platforms from one process, through real sockets: the shipped combined example (the Assured and WriftAI
/// profiles, each on its own listener), the Assured sandbox behind one and a recording upstream behind the other.
@Suite struct MultiPlatformTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    /// What the WriftAI stand-in received: method, path and the Authorization header.
    final class Seen: Sendable {
        let requests = NIOLockedValueBox<[(uri: String, authorization: [String])]>([])
    }

    static func withBoth(
        wriftai react: @escaping @Sendable (TestUpstream.Request) -> TestUpstream.Reaction = { _ in
            .respond(.ok, body: #"{"items": []}"#)
        },
        _ body: (_ assured: String, _ wriftai: String, _ wriftaiUpstream: Int, _ seen: Seen) async throws -> Void
    ) async throws {
        let seen = Seen()
        let upstream = try await TestUpstream.start { request in
            seen.requests.withLockedValue { $0.append((request.head.uri, request.head.headers["authorization"])) }
            return react(request)
        }
        let sandbox = try await SandboxServer.start(SandboxOptions(apiKey: TestConfig.apiKey))
        do {
            var config = try ConfigLoader.load(
                paths: [Self.root.appendingPathComponent("Config/examples/combined.yaml").path],
                environment: [
                    "ASSURED_BASE_URL": sandbox.baseURL, "ASSURED_API_KEY": TestConfig.apiKey,
                    "ASSURED_USER": "u@example.com",
                    "ASSURED_PASS": "pw", "WRIFTAI_API_BASE_URL": "http://127.0.0.1:\(upstream.port)/v1",
                    "WRIFTAI_ACCESS_TOKEN": "wriftai-secret-7",
                ])
            for i in config.listeners.indices {
                config.listeners[i].listen.port = 0
                config.listeners[i].listen.threads = 2
            }
            let gateway = try await Gateway.start(config: config, logger: testLogger)
            do {
                try await body(
                    "http://127.0.0.1:\(gateway.ports[0])", "http://127.0.0.1:\(gateway.ports[1])", upstream.port, seen)
            } catch {
                try? await gateway.shutdown()
                throw error
            }
            try await gateway.shutdown()
        } catch {
            try? await sandbox.shutdown()
            try? await upstream.channel.close()
            throw error
        }
        try await sandbox.shutdown()
        try await upstream.channel.close()
    }

    @Test func eachPlatformOnItsOwnListenerWithItsOwnCredential() async throws {
        try await Self.withBoth { assured, wriftai, _, seen in
            // Assured: the API key injected, the sandbox answers.
            let providers = try await send(.GET, assured + "/api/v1/users/providers-list/")
            #expect(providers.status == .ok)
            // WriftAI: the client's Authorization replaced by the bearer token; /v1/models reaches <base>/models,
            // which is /v1/models on this upstream (its base URL ends in /v1).
            let models = try await send(
                .GET, wriftai + "/v1/models?page_size=2",
                headers: ["Authorization": "Bearer client-should-not-pass"])
            #expect(models.status == .ok)
            let requests = seen.requests.withLockedValue { $0 }
            #expect(requests.count == 1)
            #expect(requests.first?.uri == "/v1/models?page_size=2")
            #expect(requests.first?.authorization == ["Bearer wriftai-secret-7"])
            // Neither listener serves the other's paths.
            #expect(try await send(.GET, assured + "/v1/models").status == .notFound)
            #expect(try await send(.GET, wriftai + "/api/v1/users/providers-list/").status == .notFound)
            #expect(seen.requests.withLockedValue { $0.count } == 1)
            // credgate's own endpoints answer on both.
            #expect(try await send(.GET, assured + "/credgate/healthz").status == .ok)
            #expect(try await send(.GET, wriftai + "/credgate/healthz").status == .ok)
        }
    }

    @Test func aRateLimitGainsRetryAfterAndKeepsItsReset() async throws {
        let reset = Int(Date().timeIntervalSince1970) + 30
        try await Self.withBoth(wriftai: { _ in
            .respond(
                .tooManyRequests, headers: ["x-ratelimit-reset": "\(reset)", "content-type": "application/json"],
                body: #"{"detail": "slow down"}"#)
        }) { _, wriftai, _, seen in
            let r = try await httpClient.execute(
                HTTPClientRequest(url: wriftai + "/v1/predictions"), timeout: .seconds(30))
            #expect(r.status == .tooManyRequests)
            #expect(r.headers["x-ratelimit-reset"] == ["\(reset)"])
            let retryAfter = try #require(r.headers.first(name: "retry-after").flatMap { Int($0) })
            // The seconds left until the reset when the answer was made: between now's and the request's.
            let left = reset - Int(Date().timeIntervalSince1970)
            #expect(retryAfter >= left - 1 && retryAfter <= 30, "Retry-After \(retryAfter), \(left) s left")
            // Never retried by credgate.
            #expect(seen.requests.withLockedValue { $0.count } == 1)
        }
    }

    @Test func theUpstreamsOwnLinksComeBackUnderTheMount() async throws {
        try await Self.withBoth(wriftai: { request in
            let port = request.head.headers.first(name: "host")?.split(separator: ":").last.map(String.init) ?? "0"
            return .respond(
                .created,
                headers: [
                    "location": "http://127.0.0.1:\(port)/v1/predictions/p-1", "content-type": "application/json",
                ],
                body:
                    #"{"id": "p-1", "next": "http://127.0.0.1:\#(port)/v1/predictions?cursor=2", "url": "https://storage.example/v1/x"}"#
            )
        }) { _, wriftai, upstreamPort, _ in
            var request = HTTPClientRequest(url: wriftai + "/v1/predictions")
            request.method = .POST
            request.body = .bytes(ByteBuffer(string: "{}"))
            let r = try await httpClient.execute(request, timeout: .seconds(30))
            #expect(r.status == .created)
            #expect(r.headers.first(name: "location") == wriftai + "/v1/predictions/p-1")
            let body = String(buffer: try await r.body.collect(upTo: 1 << 20))
            #expect(body.contains("\"next\": \"\(wriftai)/v1/predictions?cursor=2\""))
            #expect(body.contains("https://storage.example/v1/x"))
            #expect(!body.contains("127.0.0.1:\(upstreamPort)"))
        }
    }
}
