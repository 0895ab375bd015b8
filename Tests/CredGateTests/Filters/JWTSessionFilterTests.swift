import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import CredGate

/// ``JWTSessionFilter`` over a ``JWTSession`` that logs in to the scripted ``FakePlatform`` on a ``ManualClock``
/// (no background task: logins happen when a request needs one). The context's loop is a
/// `NIOAsyncTestingEventLoop`: the filter's `.retryAfter` future is completed by a `Task` once the login is over,
/// from another thread, which an `EmbeddedEventLoop` does not allow.
@Suite struct JWTSessionFilterTests {
    private struct Rig {
        let platform = FakePlatform()
        let clock = ManualClock()
        let loop = NIOAsyncTestingEventLoop()
        let session: JWTSession
        let filter: JWTSessionFilter

        init(
            header: String = "Authorization", format: String = "Bearer {token}",
            backoff: (TimeAmount, TimeAmount) = (.milliseconds(50), .milliseconds(100)),
            circuit: (Int, TimeAmount) = (3, .seconds(60))
        ) {
            var config = assuredSessionConfig(backoff: backoff, circuit: circuit)
            config.header = header
            config.format = format
            var quiet = Logger(label: "test.jwt-session-filter")
            quiet.logLevel = .critical
            session = manualSession(platform, clock: clock, config: config, logger: quiet, name: "assured_session")
            filter = JWTSessionFilter(name: "assured_session", session: session, config: config)
        }

        func context(_ client: HTTPRequestHead, attempt: Int = 0, scratch: RequestScratch = RequestScratch())
            -> FilterContext
        {
            FilterTest.context(client, on: loop, attempt: attempt, scratch: scratch)
        }

        /// One pass of the filter over `head`.
        func pass(_ head: inout HTTPRequestHead, _ context: FilterContext) -> FilterHeadResult {
            filter.decodeHead(&head, context: context)
        }
    }

    private static let client = FilterTest.head(.POST, "/api/v1/files/handle/", ["host": "gw", "content-length": "10"])

    @Test(arguments: [("Authorization", "Bearer {token}"), ("X-Session", "JWT {token}; v=1"), ("x-token", "{token}")])
    func injectsTheTokenInTheConfiguredFormat(header: String, format: String) async throws {
        let rig = Rig(header: header, format: format)
        let token = try await rig.session.validToken()
        var client = Self.client
        client.headers.add(name: header.uppercased(), value: "client's own token")
        var head = client
        let result = rig.pass(&head, rig.context(client))
        #expect(result.isProceed)
        #expect(head.headers[header] == [format.replacingOccurrences(of: "{token}", with: token.value.reveal())])
        #expect(await rig.platform.loginCalls == 1)
        await rig.session.shutdown()
    }

    /// No token yet: the request waits for the login (`.retryAfter`, one login shared with the session's other
    /// callers), and its second pass carries the new token.
    @Test func withoutATokenItWaitsForTheLoginThenProceeds() async throws {
        let rig = Rig()
        #expect(rig.session.currentToken() == nil)
        let context = rig.context(Self.client)
        var head = Self.client
        let future = try #require(rig.pass(&head, context).retryFuture)
        #expect(!head.headers.contains(name: "authorization"), "nothing is written while waiting")

        try await FilterTest.settle(future, on: rig.loop)
        let token = try #require(rig.session.currentToken())
        #expect(await rig.platform.loginCalls == 1)

        let second = rig.pass(&head, context)
        #expect(second.isProceed)
        #expect(head.headers["authorization"] == ["Bearer \(token.value.reveal())"])
        await rig.session.shutdown()
    }

    /// A request waits for a login once: if its second pass still finds no token, it gets 503 with `Retry-After`
    /// instead of waiting again. Another request still waits (the mark is per request).
    @Test func waitsOnlyOnce() async throws {
        let rig = Rig()
        await rig.platform.holdLogins()
        let context = rig.context(Self.client)
        var head = Self.client
        let first = try #require(rig.pass(&head, context).retryFuture)

        // The login is still in progress (held) and nothing is failing, so only the wait mark stops a loop.
        #expect(rig.session.unavailable() == nil)
        let second = rig.pass(&head, context)
        let members = FilterTest.expectProblem(second.stopResponse, status: 503, code: "session-unavailable")
        #expect(second.stopResponse?.headers["retry-after"] == ["1"])
        #expect((members["detail"] as? String)?.contains("no session token could be obtained") == true)

        var other = Self.client
        let otherWait = try #require(rig.pass(&other, rig.context(Self.client)).retryFuture)

        await rig.platform.releaseLogins()
        try await FilterTest.settle(first, on: rig.loop)
        try await FilterTest.settle(otherWait, on: rig.loop)
        #expect(await rig.platform.loginCalls == 1)
        await rig.session.shutdown()
    }

    /// While the login circuit is open, requests get 503 `session-unavailable` at once, with the time left as
    /// `Retry-After`, and no login is tried.
    @Test func circuitOpenAnswers503AtOnce() async throws {
        let rig = Rig(circuit: (1, .seconds(60)))
        await rig.platform.set(login: .reject(status: 401))
        await #expect(throws: SessionUnavailable.self) { try await rig.session.validToken() }
        #expect(rig.session.status().state == "circuit_open")

        var head = Self.client
        let result = rig.pass(&head, rig.context(Self.client))
        let response = try #require(result.stopResponse)
        let members = FilterTest.expectProblem(response, status: 503, code: "session-unavailable")
        #expect(response.headers["retry-after"] == ["60"])
        let detail = try #require(members["detail"] as? String)
        #expect(detail.contains("login circuit open after 1 consecutive failures"))
        #expect(detail.contains("Try again in 60 s"))
        #expect(!detail.contains(sessionMarker) && !detail.contains(sessionPassword))
        #expect(!head.headers.contains(name: "authorization"))

        rig.clock.advance(by: .seconds(59))
        var later = Self.client
        #expect(rig.pass(&later, rig.context(Self.client)).stopResponse?.headers["retry-after"] == ["1"])
        #expect(await rig.platform.loginCalls == 1)
        await rig.session.shutdown()
    }

    /// While logins back off, `Retry-After` is the wait left, rounded up to whole seconds.
    @Test func backingOffRoundsRetryAfterUp() async throws {
        let rig = Rig(backoff: (.seconds(10), .seconds(20)), circuit: (5, .seconds(300)))
        await rig.platform.set(login: .reject(status: 500))
        await #expect(throws: SessionUnavailable.self) { try await rig.session.validToken() }
        #expect(rig.session.unavailable()?.retryAfter == .milliseconds(7500)) // jitter 0.5 of 10 s

        var head = Self.client
        let response = try #require(rig.pass(&head, rig.context(Self.client)).stopResponse)
        FilterTest.expectProblem(response, status: 503, code: "session-unavailable")
        #expect(response.headers["retry-after"] == ["8"])
        await rig.session.shutdown()
    }

    /// The platform answered 401 to the token this request carried: the session drops it and the request is
    /// replayed; on the replay the filter may wait for a new token again.
    @Test func a401ReplaysAndReportsTheTokenRejected() async throws {
        let rig = Rig()
        let first = try await rig.session.validToken()
        let scratch = RequestScratch()
        var head = Self.client
        #expect(rig.pass(&head, rig.context(Self.client, scratch: scratch)).isProceed)

        let verdict = rig.filter.upstreamResponded(
            FilterTest.responseHead(.unauthorized), context: rig.context(Self.client, scratch: scratch))
        #expect(verdict.isReplay)
        #expect(rig.session.currentToken() == nil, "the rejected token was dropped")

        // The replay: the same request (scratch), attempt 1, its head rebuilt from the client's.
        let replay = rig.context(Self.client, attempt: 1, scratch: scratch)
        var replayHead = Self.client
        let wait = try #require(rig.pass(&replayHead, replay).retryFuture)
        try await FilterTest.settle(wait, on: rig.loop)
        #expect(rig.pass(&replayHead, replay).isProceed)
        let second = try #require(rig.session.currentToken())
        #expect(second.generation == first.generation + 1)
        #expect(replayHead.headers["authorization"] == ["Bearer \(second.value.reveal())"])
        #expect(await rig.platform.refreshCalls == 1)
        await rig.session.shutdown()
    }

    @Test(arguments: [
        HTTPResponseStatus.ok, .created, .forbidden, .proxyAuthenticationRequired, .notFound, .internalServerError,
        .badGateway,
    ])
    func otherStatusesAreForwarded(status: HTTPResponseStatus) async throws {
        let rig = Rig()
        let token = try await rig.session.validToken()
        let scratch = RequestScratch()
        var head = Self.client
        #expect(rig.pass(&head, rig.context(Self.client, scratch: scratch)).isProceed)
        let verdict = rig.filter.upstreamResponded(
            FilterTest.responseHead(status), context: rig.context(Self.client, scratch: scratch))
        #expect(!verdict.isReplay)
        #expect(rig.session.currentToken()?.generation == token.generation, "the token is kept")
        await rig.session.shutdown()
    }

    /// A 401 to a request the filter put no token on (it was answered before, or the scratch is another
    /// request's) is passed on and drops nothing.
    @Test func a401WithoutAnInjectedTokenIsForwarded() async throws {
        let rig = Rig()
        let token = try await rig.session.validToken()
        let verdict = rig.filter.upstreamResponded(
            FilterTest.responseHead(.unauthorized), context: rig.context(Self.client))
        #expect(!verdict.isReplay)
        #expect(rig.session.currentToken()?.generation == token.generation)
        await rig.session.shutdown()
    }

    /// A late 401 to a token already replaced does not throw the newer token away (the request is still replayed,
    /// and then carries the newer token).
    @Test func aLate401KeepsTheNewerToken() async throws {
        let rig = Rig()
        let old = try await rig.session.validToken()
        let scratch = RequestScratch()
        var head = Self.client
        #expect(rig.pass(&head, rig.context(Self.client, scratch: scratch)).isProceed)
        rig.session.rejected(old) // another request's 401
        let new = try await rig.session.validToken()

        let verdict = rig.filter.upstreamResponded(
            FilterTest.responseHead(.unauthorized), context: rig.context(Self.client, scratch: scratch))
        #expect(verdict.isReplay)
        #expect(rig.session.currentToken()?.generation == new.generation)
        var replayHead = Self.client
        #expect(rig.pass(&replayHead, rig.context(Self.client, attempt: 1, scratch: scratch)).isProceed)
        #expect(replayHead.headers["authorization"] == ["Bearer \(new.value.reveal())"])
        await rig.session.shutdown()
    }

    /// Neither the filter nor the token it keeps for the request prints the token or the login's password. (Not
    /// `dump` of the filter: it would walk into the fake platform, which keeps what it was sent in plain text.)
    @Test func noSecretInTheFiltersDescriptions() async throws {
        let rig = Rig()
        let token = try await rig.session.validToken()
        let scratch = RequestScratch()
        var head = Self.client
        #expect(rig.pass(&head, rig.context(Self.client, scratch: scratch)).isProceed)
        var dumpedToken = ""
        dump(token, to: &dumpedToken)
        for text in [
            String(describing: rig.filter), String(reflecting: rig.filter), String(describing: token), dumpedToken,
        ] {
            #expect(!text.contains(token.value.reveal()))
            #expect(!text.contains(sessionPassword))
            #expect(!text.contains(sessionAPIKey))
        }
        await rig.session.shutdown()
    }
}
