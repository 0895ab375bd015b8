import Foundation
import NIOCore
import NIOHTTP1
import Testing

@testable import CredGate

/// `GET /credgate/metrics` through a real socket, parsed by Prometheus's own Python client
/// (`prometheus_client.parser`, Tests/compat/parse_metrics.py): the values move by exactly what was done.
@Suite struct MetricsTests {
    /// A Python that has `prometheus_client`: `.build/metrics-venv` (made as the CI line in the docs says), else
    /// pyenv's 3.12.1, else `python3`.
    static func python() async throws -> [String] {
        let venv = CLITests.packageRoot.appendingPathComponent(".build/metrics-venv/bin/python").path
        for candidate in [[venv], ["env", "PYENV_VERSION=3.12.1", "python3"], ["python3"]] {
            if try await runTool(candidate + ["-c", "import prometheus_client"]).status == 0 { return candidate }
        }
        throw MetricsTestError(
            "no Python with prometheus_client: PYENV_VERSION=3.12.1 python3 -m venv .build/metrics-venv && .build/metrics-venv/bin/pip install prometheus-client"
        )
    }

    struct MetricsTestError: Error, CustomStringConvertible {
        let description: String
        init(_ d: String) { description = d }
    }

    /// Scrapes `base` and parses the answer with the real parser: sample key (`name{label="v",...}`, labels sorted)
    /// to value.
    static func scrape(_ base: String, python: [String]) async throws -> (samples: [String: Double], text: String) {
        let response = try await send(.GET, base + "/credgate/metrics")
        #expect(response.status == .ok)
        #expect(response.headers.first(name: "content-type") == "text/plain; version=0.0.4; charset=utf-8")
        let file = FileManager.default.temporaryDirectory.appendingPathComponent(
            "credgate-metrics-\(UUID().uuidString).txt")
        try Data(response.text.utf8).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let script = CLITests.packageRoot.appendingPathComponent("Tests/compat/parse_metrics.py").path
        let run = try await runTool(
            ["sh", "-c", #"script="$1"; file="$2"; shift 2; "$@" "$script" < "$file""#, "sh", script, file.path]
                + python)
        guard run.status == 0,
            let object = try JSONSerialization.jsonObject(with: Data(run.output.utf8)) as? [String: Any]
        else {
            throw MetricsTestError("the exposition did not parse (status \(run.status)):\n\(response.text)")
        }
        var samples: [String: Double] = [:]
        for (key, value) in object {
            if let n = value as? NSNumber { samples[key] = n.doubleValue }
        }
        return (samples, response.text)
    }

    @Test func valuesMoveByWhatWasDone() async throws {
        let python = try await Self.python()
        try await ReadinessProbeTests.withGateway { f in
            _ = try await ReadinessProbeTests.poll(f.base + "/credgate/readiness") { $0.status == .ok }
            let before = try await Self.scrape(f.base, python: python).samples

            for _ in 0..<3 {
                #expect(try await send(.GET, f.base + "/api/v1/users/providers-list/?limit=1").status == .ok)
            }
            #expect(try await send(.GET, f.base + "/no-such-route/12345").status.code == 404)
            #expect(
                try await send(.GET, f.base + "/api/v1/users/provider-documents/no-such-document/").status.code == 404)
            let presign = f.base + "/api/v1/files/presign-s3-url/presign_s3_url/"
            let json: HTTPHeaders = ["content-type": "application/json"]
            for _ in 0..<2 {
                let r = try await send(
                    .POST, presign, headers: json,
                    body: #"{"s3_url": "s3://assured-sandbox-files/m.pdf", "presigned_url": ""}"#)
                #expect(r.status == .ok, "\(r.text)")
            }
            let upload = try await send(.POST, f.base + "/api/v1/files/handle/", headers: json, body: "{}")
            #expect(upload.status.code == 415, "\(upload.text)")

            let (after, text) = try await Self.scrape(f.base, python: python)
            func delta(_ key: String) -> Double { (after[key] ?? 0) - (before[key] ?? 0) }
            func requests(_ route: String, _ method: String, _ statusClass: String) -> String {
                #"credgate_requests_total{method="\#(method)",route="\#(route)",status_class="\#(statusClass)"}"#
            }

            #expect(delta(requests("assured-api", "GET", "2xx")) == 3, "\(text)")
            #expect(delta(#"credgate_request_duration_seconds_count{route="assured-api"}"#) == 3)
            #expect(delta(#"credgate_request_duration_seconds_bucket{le="+Inf",route="assured-api"}"#) == 3)
            #expect(delta(#"credgate_response_body_bytes_total{route="assured-api"}"#) > 0)
            #expect(delta(requests("none", "GET", "4xx")) == 1, "a request with no route: \(text)")
            #expect(delta(requests("assured-provider-documents", "GET", "4xx")) == 1, "the platform's 404")
            #expect(delta(requests("assured-presign", "POST", "2xx")) == 2)
            #expect(delta(#"credgate_request_body_bytes_total{route="assured-presign"}"#) > 0)
            #expect(delta(requests("assured-upload", "POST", "4xx")) == 1)
            // The first scrape, counted once answered (the second is not yet).
            #expect(delta(requests("credgate-admin", "GET", "2xx")) == 1)

            #expect(delta("credgate_presign_cache_misses_total") == 1, "\(text)")
            #expect(delta("credgate_presign_cache_hits_total") == 1)
            #expect(after["credgate_presign_cache_entries"] == 1)
            #expect(after["credgate_presign_cache_evictions_total"] == 0)

            #expect(delta(#"credgate_upload_rejections_total{reason="upload-not-multipart"}"#) == 1, "\(text)")
            #expect(
                after[#"credgate_upload_rejections_total{reason="upload-content-mismatch"}"#] == 0,
                "every reason shows, from 0")

            #expect(after["credgate_access_log_dropped_total"] != nil, "\(text)")
            #expect((after["credgate_client_connections"] ?? 0) >= 1)
            #expect(after[#"credgate_upstream_connect_failures_total{upstream="assured"}"#] == 0)
            #expect(after[#"credgate_upstream_stale_retries_total{upstream="assured"}"#] != nil)

            #expect(after[#"credgate_credential_state{credential="assured_session",state="valid"}"#] == 1, "\(text)")
            #expect(after[#"credgate_credential_state{credential="assured_session",state="no_token"}"#] == 0)
            #expect(after[#"credgate_credential_circuit_open{credential="assured_session"}"#] == 0)
            #expect((after[#"credgate_credential_expiry_seconds{credential="assured_session"}"#] ?? 0) > 60)
            #expect((after[#"credgate_credential_logins_total{credential="assured_session"}"#] ?? 0) >= 1)
            #expect(after[#"credgate_credential_refreshes_total{credential="assured_session"}"#] != nil)
            #expect(after[#"credgate_credential_failures_total{credential="assured_session",operation="login"}"#] == 0)

            // Bounded labels: no path, query or id; never a secret.
            #expect(!text.contains("no-such-route") && !text.contains("providers-list") && !text.contains("12345"))
            #expect(!text.contains("eyJ"), "no JWT")
            for secret in await f.secrets() { #expect(!text.contains(secret)) }
        }
    }

    /// Counters read from the session at scrape time follow it: failed logins before the first success show.
    @Test func loginFailuresCounted() async throws {
        let python = try await Self.python()
        try await ReadinessProbeTests.withGateway(failLogins: 1) { f in
            _ = try await ReadinessProbeTests.poll(f.base + "/credgate/readiness", seconds: 15) { $0.status == .ok }
            let (samples, text) = try await Self.scrape(f.base, python: python)
            #expect(
                (samples[#"credgate_credential_failures_total{credential="assured_session",operation="login"}"#] ?? 0)
                    >= 1, "\(text)")
            #expect(samples[#"credgate_credential_state{credential="assured_session",state="valid"}"#] == 1)
        }
    }
}
