import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import Sandbox
import Testing

@testable import CredGate

/// No secret in any log line at any log level, through real sockets: the shipped profile, a sandbox that issues
/// short-lived tokens (so the session refreshes), requests on API-key, JWT and SSN routes, a revocation (a failed
/// refresh, then a new login). The log is searched for the API key, the password, the user, every access and
/// refresh token the sandbox issued, and the SSNs, both as text and inside hex dumps (AsyncHTTPClient's `trace`
/// lines print body bytes as hex, the first and last 32 bytes of each part).
@Suite struct LogLevelSecretsTests {
    static let key = "sk-live-LOGLEVEL-8d3f2a71c9e0"
    static let user = "ops-LOGUSER-5b2e@example.com"
    static let password = "pw-LOGPASS-e41c9b7d-never-log"
    static let ssns = ["123-45-6789", "987-65-4321"]

    /// A gateway on the shipped profile, logging at `level` into `logs`, against a fresh sandbox, with this
    /// suite's own key, user and password (so that every one of them can be searched for).
    static func withGateway(
        level: Logger.Level, lifetime: Duration = .seconds(6),
        configure: (inout GatewayConfig) -> Void = { _ in },
        _ body: (SessionTests.Fixture) async throws -> Void
    ) async throws {
        try await SessionTests.withGateway(
            lifetime: lifetime, account: (key, user, password), logLevel: level,
            configure: configure, body)
    }

    @Test(arguments: [Logger.Level.trace, .debug, .info, .notice, .warning, .error])
    func noSecretInAnyLogLine(level: Logger.Level) async throws {
        try await Self.withGateway(level: level) { f in
            var answers = ""
            let list = try await send(.GET, f.base + "/api/v1/users/providers-list/?limit=2")
            #expect(list.status == .ok)
            let profileID = try await f.providerProfileID()
            let documents = try await send(.GET, f.base + "/api/v1/users/provider-documents/?limit=1")
            #expect(documents.status == .ok, "\(documents.text)")
            let ssnPath = "/api/v1/users/retrieve-update-provider-ssn-sym-encrypted/\(profileID)/"
            let patch = try await send(
                .PATCH, f.base + ssnPath, headers: ["content-type": "application/json"],
                body: #"{"ssn": "\#(Self.ssns[0])"}"#)
            #expect(patch.status == .ok, "\(patch.text)")
            let back = try await send(.GET, f.base + "/api/v1/users/retrieve-update-provider-ssn/\(profileID)/")
            #expect(try back.json()["ssn"] as? String == Self.ssns[0].filter(\.isNumber))

            // A 6 s token is renewed about 3 s after it was issued: wait for a refresh answer to have been read (with
            // room for a loaded 2-core machine).
            let deadline = ContinuousClock.now + .seconds(15)
            while await f.sandbox.counters().refreshes < 1, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(await f.sandbox.counters().refreshes >= 1, "the session refreshed its token")
            let after = try await send(
                .PATCH, f.base + ssnPath, headers: ["content-type": "application/json"],
                body: #"{"ssn": "\#(Self.ssns[1])"}"#)
            #expect(after.status == .ok, "\(after.text)")

            // Every token revoked: the next JWT request gets 401, the refresh is refused, a new login follows.
            _ = await f.sandbox.revokeTokens()
            // A loaded machine can stall past a short token's life between the new login and the replay; a client
            // that gets the 401 then simply asks again (the point here is what reaches the log, not the timing).
            var relogin = try await send(.GET, f.base + "/api/v1/users/provider-documents/?limit=1")
            for _ in 0..<2 where relogin.status != .ok {
                relogin = try await send(.GET, f.base + "/api/v1/users/provider-documents/?limit=1")
            }
            #expect(relogin.status == .ok, "\(relogin.text)")
            #expect(
                try await send(
                    .POST, f.base + "/api/v1/users/login/", headers: ["content-type": "application/json"],
                    body: #"{"email": "sdk@example.com", "password": "placeholder"}"#
                ).status == .ok)
            let status = try await send(.GET, f.base + "/credgate/status")
            answers += status.text

            let tokens = await f.sandbox.issuedTokens()
            #expect(tokens.count >= 6, "a login, a refresh and a login again: \(tokens.count) tokens")
            let used = await f.sandbox.recorder.all().compactMap { $0.header("authorization") }
                .map { String($0.dropFirst("Bearer ".count)) }
            let secrets =
                [Self.key, Self.password, Self.user] + Self.ssns + Self.ssns.map { $0.filter(\.isNumber) } + tokens
                + used
            let log = f.logs.text
            if level <= .info { #expect(!log.isEmpty, "the access log and session lines were captured") }
            let leaks = SecretSearch.leaks(of: secrets, in: log)
            #expect(leaks.isEmpty, "at \(level): \(leaks.prefix(3))")
            #expect(SecretSearch.leaks(of: secrets, in: answers).isEmpty)
        }
    }

    /// An AsyncHTTPClient error that quotes what it was given (here the value of a login header it refuses to
    /// send) must reach neither `last_error` in `/credgate/status`, nor the 503 a JWT route answers, nor the log.
    /// (A configuration built in code skips the loader's checks; the header stands for any such error text.)
    @Test func anErrorQuotingAHeaderValueReachesNeitherStatusNorAnswersNorLog() async throws {
        let secret = "sk-HEADER-LEAK-3f9c0d2e"
        try await Self.withGateway(
            level: .trace, lifetime: .seconds(600),
            configure: { config in
                SessionTests.withSession(&config) { session in
                    session.login.headers.append((name: "x-client-secret", value: Secret(secret + "\u{7}")))
                }
            }
        ) { f in
            let deadline = ContinuousClock.now + .seconds(5)
            var status = ""
            while ContinuousClock.now < deadline {
                let answer = try await send(.GET, f.base + "/credgate/status")
                status = answer.text
                let credentials = try answer.json()["credentials"] as? [[String: Any]] ?? []
                let session = credentials.first { $0["name"] as? String == "assured_session" }
                if (session?["login_failures"] as? Int ?? 0) > 0 { break }
                try await Task.sleep(for: .milliseconds(50))
            }
            #expect(status.contains("not valid in HTTP"), "\(status)")
            let refused = try await send(.GET, f.base + "/api/v1/users/provider-documents/")
            #expect(refused.status == .serviceUnavailable, "\(refused.text)")
            for (label, text) in [("status", status), ("503 answer", refused.text), ("log", f.logs.text)] {
                #expect(!text.contains(secret), "\(label) quotes the header value")
                #expect(!text.contains("HEADER-LEAK"), "\(label) quotes part of the header value")
            }
            #expect(await f.sandbox.counters().logins == 0)
        }
    }
}

/// Looks for secrets in text, including inside hex dumps.
enum SecretSearch {
    /// The pieces of `secret` that must not appear anywhere: the whole value; for a longer one every 16-character
    /// run of it, because a hex dump shows only the first and last 32 bytes of a body and so cuts a token. For a
    /// JWT, the runs come from its signature only: every token of a sandbox starts with the same header and claim
    /// names, which are no secret.
    static func fragments(of secret: String) -> [String] {
        let parts = secret.split(separator: ".", omittingEmptySubsequences: false)
        let source = parts.count == 3 && secret.hasPrefix("ey") ? Array(parts[2]) : Array(secret)
        guard source.count > 16 else { return [secret] }
        return [secret] + (0...(source.count - 16)).map { String(source[$0..<($0 + 16)]) }
    }

    /// The text, plus every run of hex digits in it decoded to bytes (read as UTF-8, one line per run).
    static func withHexDecoded(_ text: String) -> String {
        var decoded: [String] = []
        var run: [UInt8] = []
        func flush() {
            if run.count >= 16 {
                var bytes: [UInt8] = []
                var i = 0
                while i + 1 < run.count {
                    bytes.append(hexValue(run[i]) << 4 | hexValue(run[i + 1]))
                    i += 2
                }
                decoded.append(String(decoding: bytes, as: UTF8.self))
            }
            run.removeAll(keepingCapacity: true)
        }
        for byte in text.utf8 {
            if hexValue(byte) != 0xFF { run.append(byte) } else { flush() }
        }
        flush()
        return text + "\n" + decoded.joined(separator: "\n")
    }

    private static func hexValue(_ c: UInt8) -> UInt8 {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return 0xFF
        }
    }

    /// Each secret (shortened) with the first fragment of it found in `text`.
    static func leaks(of secrets: [String], in text: String) -> [String] {
        let haystack = withHexDecoded(text)
        var found: [String] = []
        for secret in Set(secrets) where !secret.isEmpty {
            if let fragment = fragments(of: secret).first(where: { haystack.contains($0) }) {
                found.append("\(secret.prefix(12))... as '\(fragment)'")
            }
        }
        return found
    }
}
