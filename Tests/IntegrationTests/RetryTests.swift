import AsyncHTTPClient
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import Testing

@testable import CredGate

/// A route's `retry:` through real sockets: idempotent requests sent again after a 429 or 5xx, waiting as the
/// platform asked; POST never; an answer asking for longer than `max_wait` passed on.
@Suite struct RetryTests {
    /// An upstream that answers the first `failures` requests with `status` (and `headers`), then 200.
    static func withUpstream(
        failures: Int, status: HTTPResponseStatus = .serviceUnavailable, headers: HTTPHeaders = [:],
        retry: (inout RetryPolicy) -> Void,
        _ body: (_ base: String, _ requests: @Sendable () -> Int) async throws -> Void
    ) async throws {
        let count = NIOLockedValueBox(0)
        let upstream = try await TestUpstream.start { _ in
            let n = count.withLockedValue { c -> Int in
                c += 1
                return c
            }
            return n <= failures ? .respond(status, headers: headers, body: "busy") : .respond(.ok, body: "fine")
        }
        var config = TestConfig.assured(url: "http://127.0.0.1:\(upstream.port)")
        retry(&config.routes[0].retry)
        do {
            try await GatewayFixture.with(config: config) { f in
                try await body(f.base, { count.withLockedValue { $0 } })
            }
        } catch {
            try? await upstream.channel.close()
            throw error
        }
        try await upstream.channel.close()
    }

    @Test func anIdempotentRequestIsRetriedUntilItSucceeds() async throws {
        try await Self.withUpstream(
            failures: 2,
            retry: {
                $0.attempts = 2
                $0.initialBackoff = .milliseconds(50)
            }
        ) { base, requests in
            let started = ContinuousClock.now
            let r = try await send(.GET, base + "/api/things")
            #expect(r.status == .ok)
            #expect(requests() == 3)
            #expect(ContinuousClock.now - started >= .milliseconds(150)) // 50 ms, then 100 ms of backoff
        }
    }

    @Test func retriesStopAtTheirCountAndTheLastAnswerGoesToTheClient() async throws {
        try await Self.withUpstream(
            failures: 5,
            retry: {
                $0.attempts = 2
                $0.initialBackoff = .milliseconds(10)
            }
        ) { base, requests in
            let r = try await send(.PUT, base + "/api/things/1", body: #"{"a": 1}"#)
            #expect(r.status == .serviceUnavailable)
            #expect(requests() == 3)
        }
    }

    @Test func postIsNeverRetried() async throws {
        try await Self.withUpstream(
            failures: 1,
            retry: {
                $0.attempts = 3
                $0.initialBackoff = .milliseconds(10)
            }
        ) { base, requests in
            let r = try await send(.POST, base + "/api/things", body: #"{"a": 1}"#)
            #expect(r.status == .serviceUnavailable)
            #expect(requests() == 1)
        }
    }

    @Test func retryIsOffByDefault() async throws {
        try await Self.withUpstream(failures: 1, retry: { _ in }) { base, requests in
            let r = try await send(.GET, base + "/api/things")
            #expect(r.status == .serviceUnavailable)
            #expect(requests() == 1)
        }
    }

    @Test func theRateLimitResetIsHonouredWithinMaxWait() async throws {
        try await Self.withUpstream(
            failures: 1, status: .tooManyRequests, headers: ["retry-after": "1"],
            retry: {
                $0.attempts = 1
                $0.maxWait = .seconds(2)
            }
        ) { base, requests in
            let started = ContinuousClock.now
            let r = try await send(.GET, base + "/api/things")
            #expect(r.status == .ok)
            #expect(requests() == 2)
            #expect(ContinuousClock.now - started >= .seconds(1))
        }
        // Asked to wait longer than max_wait: passed on at once with the platform's Retry-After.
        let reset = Int(Date().timeIntervalSince1970) + 60
        try await Self.withUpstream(
            failures: 1, status: .tooManyRequests, headers: ["x-ratelimit-reset": "\(reset)"],
            retry: {
                $0.attempts = 2
                $0.maxWait = .seconds(5)
            }
        ) { base, requests in
            let r = try await httpClient.execute(HTTPClientRequest(url: base + "/api/things"), timeout: .seconds(30))
            #expect(r.status == .tooManyRequests)
            #expect(r.headers.first(name: "retry-after").flatMap { Int($0) }.map { $0 >= 55 && $0 <= 60 } == true)
            #expect(requests() == 1)
        }
    }
}
