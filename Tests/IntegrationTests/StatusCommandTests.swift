import Foundation
import NIOCore
import NIOHTTP1
import Testing

/// `credgate status` (the executable) against a gateway in this process: the credentials table, the presign
/// cache's hit rate, requests and errors per route; `--json` carries the same; never a secret.
@Suite struct StatusCommandTests {
    /// The cells of the row of `table` output whose first cell is `first`.
    static func row(_ output: String, _ first: String) -> [String]? {
        output.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
            .first { $0.first == first }
    }

    @Test func tableOfCredentialsCacheAndRoutes() async throws {
        try await ReadinessProbeTests.withGateway { f in
            _ = try await ReadinessProbeTests.poll(f.base + "/credgate/readiness") { $0.status == .ok }
            // assured-api: two answers; assured-provider-documents: one 404 of the platform's.
            for _ in 0..<2 {
                #expect(try await send(.GET, f.base + "/api/v1/users/providers-list/?limit=1").status == .ok)
            }
            #expect(
                try await send(.GET, f.base + "/api/v1/users/provider-documents/no-such-document/").status.code == 404)
            // assured-presign: one refused by credgate (422), then a miss and a hit.
            let presign = f.base + "/api/v1/files/presign-s3-url/presign_s3_url/"
            let json: HTTPHeaders = ["content-type": "application/json"]
            #expect(try await send(.POST, presign, headers: json, body: #"{"s3_url": "not-s3"}"#).status.code == 422)
            for _ in 0..<2 {
                let r = try await send(
                    .POST, presign, headers: json,
                    body: #"{"s3_url": "s3://assured-sandbox-files/a.pdf", "presigned_url": ""}"#)
                #expect(r.status == .ok, "\(r.text)")
            }

            let run = try await CommandRunner.run(["status", "--url", f.base])
            #expect(run.code == 0, "\(run.output)")
            let out = run.output
            #expect(out.contains(": ready"), "\(out)")
            for column in [
                "CREDENTIAL", "KIND", "STATE", "EXPIRES IN", "LAST REFRESH", "LAST ERROR", "ROUTE", "REQUESTS",
                "ERRORS", "4XX", "5XX",
            ] {
                #expect(out.contains(column), "no \(column) column: \(out)")
            }
            let session = try #require(Self.row(out, "assured_session"), "\(out)")
            #expect(session[1] == "jwt_session" && session[2] == "valid", "\(session)")
            #expect(
                session[3].hasSuffix("m") || session[3].hasSuffix("h") || session[4].hasSuffix("m"),
                "expires in, for a person: \(session)")
            #expect(out.contains("ago"), "last refresh, relative: \(out)")
            #expect(out.contains("hit rate 50% (1 hit, 1 miss)"), "\(out)")
            // ROUTE  REQUESTS  ERRORS  4XX  5XX  CUT SHORT  FAST PATH (how many of the GETs took it depends on which
            // pooled connection the client reused: one that served the readiness probe stays on the full path)
            func counts(_ route: String) -> [String]? { Self.row(out, route).map { Array($0.prefix(6)) } }
            #expect(counts("assured-api") == ["assured-api", "2", "0", "0", "0", "0"], "\(out)")
            #expect(
                counts("assured-provider-documents") == ["assured-provider-documents", "1", "1", "1", "0", "0"],
                "\(out)")
            // The hit is answered on the fast path, unless it came on a connection that stays on the full path.
            #expect(counts("assured-presign") == ["assured-presign", "3", "1", "1", "0", "0"], "\(out)")
            #expect(
                Self.row(out, "assured-presign").flatMap { $0.last.flatMap { Int($0) } }.map { (0...1).contains($0) }
                    == true)
            #expect(
                Self.row(out, "assured-api").flatMap { $0.last.flatMap { Int($0) } }.map { (0...2).contains($0) }
                    == true)
            #expect(Self.row(out, "assured-upload") == nil, "routes without requests are summed up, not listed: \(out)")

            for secret in await f.secrets() {
                #expect(!out.contains(secret))
            }
            #expect(!out.contains("eyJ"), "no JWT")

            // --json: the same data, as the gateway gives it.
            let raw = try await CommandRunner.run(["status", "--url", f.base, "--json"])
            #expect(raw.code == 0)
            let object = try #require(
                try JSONSerialization.jsonObject(with: Data(raw.output.utf8)) as? [String: Any], "\(raw.output)")
            let routes = try #require(object["routes"] as? [[String: Any]])
            let documents = try #require(routes.first { $0["route"] as? String == "assured-provider-documents" })
            #expect(
                documents["requests"] as? Int == 1 && documents["errors"] as? Int == 1
                    && documents["client_errors"] as? Int == 1)
            let presignRoute = try #require(routes.first { $0["route"] as? String == "assured-presign" })
            #expect(presignRoute["requests"] as? Int == 3 && presignRoute["client_errors"] as? Int == 1)
            let cache = try #require(object["presign_cache"] as? [String: Any])
            #expect(cache["hit_rate"] as? Double == 0.5)
            #expect((object["readiness"] as? [String: Any])?["status"] as? String == "ok")
            for secret in await f.secrets() {
                #expect(!raw.output.contains(secret))
            }
        }
    }

    @Test func showsWhatIsNotReadyAndTheLastError() async throws {
        try await ReadinessProbeTests.withGateway(password: "pw-WRONG-status-5a2e") { f in
            _ = try await ReadinessProbeTests.poll(f.base + "/credgate/readiness") { r in
                (try ReadinessProbeTests.blocker(r)["last_error"] as? String) != nil
            }
            let run = try await CommandRunner.run(["status", "--url", f.base])
            #expect(run.code == 0, "\(run.output)")
            #expect(run.output.contains("NOT READY: session 'assured_session'"), "\(run.output)")
            let session = try #require(Self.row(run.output, "assured_session"), "\(run.output)")
            #expect(session.joined(separator: " ").contains("401"), "the last error: \(session)")
            #expect(!run.output.contains("pw-WRONG") && !run.output.contains(ReadinessProbeTests.password))
        }
    }
}
