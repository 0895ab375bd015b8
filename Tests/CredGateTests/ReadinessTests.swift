import Foundation
import NIOCore
import NIOHTTP1
import Testing

@testable import CredGate

/// ``Readiness``, the probes of ``AdminEndpoints``, the per-route counters and the `required_for_ready` key, without
/// a socket.
@Suite struct ReadinessTests {
    static let valid = CredentialStatus(name: "s1", kind: "jwt_session", state: "valid", expiresInSeconds: 600)
    static let failing = CredentialStatus(
        name: "s2", kind: "jwt_session", state: "backing_off", lastError: "login answered 401")
    static let key = CredentialStatus.staticKey(name: "k")

    @Test func readyWhenEverySessionHoldsAValidToken() {
        let r = Readiness(credentials: [Self.key, Self.valid], notRequired: [], draining: false)
        #expect(r.isReady)
        #expect(r.blockers.isEmpty && r.ignored.isEmpty)
        #expect(r.summary == "ready")
        // Renewing a token that is still valid does not make it unready.
        let renewing = CredentialStatus(name: "s1", kind: "jwt_session", state: "refreshing", expiresInSeconds: 30)
        #expect(Readiness(credentials: [renewing], notRequired: [], draining: false).isReady)
        // An expiry of 0 s means "valid for less than a second", not "none".
        let lastSecond = CredentialStatus(name: "s1", kind: "jwt_session", state: "valid", expiresInSeconds: 0)
        #expect(Readiness(credentials: [lastSecond], notRequired: [], draining: false).isReady)
    }

    @Test func aSessionWithoutATokenBlocksWithItsStateAndLastError() {
        let r = Readiness(credentials: [Self.key, Self.valid, Self.failing], notRequired: [], draining: false)
        #expect(!r.isReady)
        #expect(r.blockers.count == 1)
        let b = r.blockers[0]
        #expect(b.credential == "s2" && b.state == "backing_off" && b.lastError == "login answered 401")
        #expect(
            b.reason
                == "session 's2' holds no valid token: logins are failing and the next attempt waits (backoff); last error: login answered 401"
        )
        #expect(r.summary == b.reason)
        let fresh = CredentialStatus(name: "s3", kind: "jwt_session", state: "logging_in")
        #expect(
            Readiness(credentials: [fresh], notRequired: [], draining: false).blockers.first?.reason
                == "session 's3' holds no valid token: it is logging in")
    }

    @Test func requiredForReadyFalseIsIgnoredButListed() {
        let r = Readiness(credentials: [Self.valid, Self.failing], notRequired: ["s2"], draining: false)
        #expect(r.isReady)
        #expect(r.ignored == ["s2"])
    }

    @Test func drainingIsNeverReady() {
        let r = Readiness(credentials: [Self.valid], notRequired: [], draining: true)
        #expect(!r.isReady)
        #expect(r.summary == "credgate is draining (shutting down)")
    }

    static func answer(_ admin: AdminEndpoints, _ path: Substring) -> (UInt, String) {
        let r = admin.respond(method: .GET, path: path, requestID: "test")
        return (r.status.code, String(buffer: r.body))
    }

    @Test func readinessAnswers503WithTheReasonAndTheOtherProbesStay200() throws {
        let drain = DrainState()
        let admin = AdminEndpoints(credentialStatus: { [Self.key, Self.failing] }, drain: drain)
        let (status, body) = Self.answer(admin, "/credgate/readiness")
        #expect(status == 503)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(body.utf8)) as? [String: Any])
        #expect(json["status"] as? String == "not_ready")
        #expect(json["draining"] as? Bool == false)
        let notReady = try #require(json["not_ready"] as? [[String: Any]])
        #expect(notReady.count == 1)
        #expect(notReady[0]["credential"] as? String == "s2")
        #expect(notReady[0]["state"] as? String == "backing_off")
        #expect(notReady[0]["last_error"] as? String == "login answered 401")
        for path: Substring in ["/credgate/liveness", "/credgate/startup", "/credgate/healthz"] {
            #expect(Self.answer(admin, path) == (200, #"{"status":"ok"}"#))
        }

        let ready = AdminEndpoints(credentialStatus: { [Self.key, Self.valid] }, drain: drain)
        #expect(Self.answer(ready, "/credgate/readiness") == (200, #"{"status":"ok"}"#))
        // The hook graceful drain will use: readiness turns 503 at once, liveness does not.
        ready.drain.startDraining()
        let (drainingStatus, drainingBody) = Self.answer(ready, "/credgate/readiness")
        #expect(drainingStatus == 503)
        #expect(drainingBody.contains(#""status":"draining""#))
        #expect(Self.answer(ready, "/credgate/liveness").0 == 200)
    }

    @Test func routeCountersCountRequestsAndErrorsByClass() {
        let counters = RouteCounters()
        for status: UInt in [200, 204, 302, 404, 422, 500, 503] { counters.record(status: status, cutShort: false) }
        counters.record(status: 200, cutShort: true)
        counters.record(status: 0, cutShort: true)
        #expect(counters.snapshot == RouteTrafficSnapshot(requests: 9, clientErrors: 2, serverErrors: 2, cutShort: 2))
        #expect(counters.snapshot.errors == 6)
    }

    @Test func routeTrafficAddsUpRoutesOfOneNameAndCountsASharedRouteOnce() async {
        let a = RouteCounters()
        let b = RouteCounters()
        let c = RouteCounters()
        a.record(status: 200, cutShort: false)
        b.record(status: 500, cutShort: false)
        c.record(status: 404, cutShort: false)
        let traffic = RouteTraffic()
        #expect(traffic.snapshot().isEmpty)
        traffic.publish([("x", a), ("y", c), ("x", b), ("y", c)])
        let snapshot = traffic.snapshot()
        #expect(snapshot.map(\.route) == ["x", "y"])
        #expect(snapshot[0].traffic == RouteTrafficSnapshot(requests: 2, serverErrors: 1))
        #expect(snapshot[1].traffic == RouteTrafficSnapshot(requests: 1, clientErrors: 1))

        // Counted from many threads at once, nothing is lost.
        await withTaskGroup(of: Void.self) { group in
            for _ in 0..<8 { group.addTask { for _ in 0..<1000 { a.record(status: 200, cutShort: false) } } }
        }
        #expect(a.snapshot.requests == 8001)
    }

    static let sessionYAML = """
        upstreams:
          p: {url: "http://127.0.0.1:9"}
        credentials:
          s:
            kind: jwt_session
            upstream: p
            login: {path: /login, body: '{"u": "x"}', access_token: token}
        REQUIRED
        routes:
          - {name: r, path: /x, upstream: p, credentials: [s]}
        """

    static func session(_ line: String) throws(ConfigError) -> JWTSessionConfig? {
        let config = try ConfigLoader.parse(
            yaml: sessionYAML.replacingOccurrences(of: "REQUIRED", with: line), environment: [:])
        guard case .jwtSession(let s) = config.credentials["s"]?.kind else { return nil }
        return s
    }

    @Test func requiredForReadyIsReadFromTheConfig() throws {
        #expect(try Self.session("")?.requiredForReady == true, "default")
        #expect(try Self.session("    required_for_ready: false")?.requiredForReady == false)
        #expect(try Self.session("    required_for_ready: true")?.requiredForReady == true)
        #expect(throws: ConfigError.self) { try Self.session("    required_for_ready: no") }
        do {
            _ = try Self.session("    required_for_ready: no")
        } catch {
            #expect(
                error.issues.map(\.description) == [
                    "credentials.s.required_for_ready: expected true or false, got 'no'"
                ])
        }
    }

    @Test func durationTextReadsWhatTheConfigReads() {
        #expect(DurationText.parse("30s") == .seconds(30))
        #expect(DurationText.parse("500ms") == .milliseconds(500))
        #expect(DurationText.parse("1m") == .minutes(1))
        #expect(DurationText.parse("2") == .seconds(2))
        #expect(DurationText.parse("soon") == nil)
        #expect(DurationText.parse("1.5s") == nil)
    }
}
