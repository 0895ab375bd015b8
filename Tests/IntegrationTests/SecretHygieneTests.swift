import AsyncHTTPClient
import Foundation
import NIOCore
import Sandbox
import Testing

@testable import CredGate

/// The configured key must never appear in anything the gateway writes except the one header it injects.
@Suite struct SecretHygieneTests {
    @Test func theKeyNeverAppearsInLogsErrorsOrAdminAnswers() async throws {
        let key = "sk-live-SECRET-4f9a1c-never-print-me"
        let capture = LogCapture()
        let sandbox = try await SandboxServer.start(SandboxOptions(apiKey: key))
        defer { Task { try? await sandbox.shutdown() } }
        let config = TestConfig.assured(url: sandbox.baseURL, key: key) { $0.routes[0].maxBodyBytes = 100 }
        let gateway = try await Gateway.start(
            config: config, logger: capture.logger(), accessLogSink: capture.accessSink)
        let base = "http://127.0.0.1:\(gateway.port)"
        var seen = ""
        for (method, path, body) in [
            ("GET", "/api/v1/users/providers-list/", nil), ("POST", "/api/v1/x/", String(repeating: "a", count: 500)),
            ("GET", "/nothing", nil), ("GET", "/api/../x", nil), ("GET", "/credgate/healthz", nil),
            ("GET", "/credgate/status", nil),
            ("GET", "/credgate/unknown", nil), ("PUT", "/api/v1/y/", "{}"),
        ] as [(String, String, String?)] {
            let raw = try await RawClient.exchange(
                port: gateway.port,
                "\(method) \(path) HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                    + (body.map { "Content-Length: \($0.utf8.count)\r\n\r\n\($0)" } ?? "\r\n"))
            seen += raw
        }
        // Upstream down: the 502 must not leak it either.
        try await sandbox.shutdown()
        seen += try await send(.GET, base + "/api/v1/users/providers-list/").text
        try await gateway.shutdown()
        #expect(seen.contains("HTTP/1.1 200"))
        #expect(seen.contains("no-route"))
        #expect(!seen.contains(key))
        #expect(!capture.text.isEmpty)
        #expect(!capture.text.contains(key))
        #expect(!capture.text.contains(String(key.prefix(12))))
    }
}
