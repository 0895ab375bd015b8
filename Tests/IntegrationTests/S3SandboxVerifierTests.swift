import Foundation
import Testing

@testable import Sandbox

/// The S3 sandbox's own SigV4 verification agrees with botocore: every presigned URL and header-signed request
/// in `Tests/CredGateTests/Vectors/sigv4.json` (signed by botocore, see scripts/sigv4-vectors.py) is accepted at
/// its signing time, refused once tampered with, and a presigned one is refused as expired after its lifetime.
@Suite struct S3SandboxVerifierTests {
    nonisolated(unsafe) static let vectors: [String: Any] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent(
            "../CredGateTests/Vectors/sigv4.json"
        ).standardized
        return (try? JSONSerialization.jsonObject(with: Data(contentsOf: url))) as? [String: Any] ?? [:]
    }()

    struct Case {
        var name: String
        var verifier: S3SigV4Verifier
        var method: String
        var target: RequestTarget
        var headers: [(String, String)]
        var now: Int
        var expires: Int?
    }

    static func cases(_ section: String) -> [Case] {
        let credentials = vectors["credentials"] as? [String: [String: Any]] ?? [:]
        let times = vectors["times"] as? [String: [String: Any]] ?? [:]
        return (vectors[section] as? [[String: Any]] ?? []).compactMap { v in
            guard let c = credentials[v["credentials"] as? String ?? ""], let t = times[v["time"] as? String ?? ""],
                let epoch = t["epoch_seconds"] as? Double, let url = v["url"] as? String,
                let components = URLComponents(string: url)
            else { return nil }
            let afterAuthority = url.dropFirst((components.scheme ?? "").count + 3)
            let rawTarget = afterAuthority.firstIndex(of: "/").map { String(afterAuthority[$0...]) } ?? "/"
            var host = components.host ?? ""
            if let port = components.port, !(components.scheme == "https" && port == 443),
                !(components.scheme == "http" && port == 80)
            {
                host += ":\(port)"
            }
            var headers = ((v["headers"] as? [[String]]) ?? []).map { ($0[0].lowercased(), $0[1]) }
            headers += ((v["expected_headers"] as? [[String]]) ?? []).map { ($0[0].lowercased(), $0[1]) }
            headers.append(("host", host))
            let verifier = S3SigV4Verifier(
                accessKeyID: c["access_key_id"] as! String, secretAccessKey: c["secret_access_key"] as! String,
                region: v["region"] as! String)
            return Case(
                name: v["name"] as? String ?? "?", verifier: verifier, method: v["method"] as! String,
                target: RequestTarget(rawTarget), headers: headers, now: Int(epoch), expires: v["expires"] as? Int)
        }
    }

    static func verify(_ c: Case, path: String? = nil, now: Int? = nil) -> S3SigV4Verifier.Verdict {
        c.verifier.verify(
            method: c.method, path: path ?? c.target.path, parameters: c.target.parameters,
            headers: { name in c.headers.filter { $0.0 == name }.map(\.1) }, now: now ?? c.now)
    }

    @Test func presignedURLsFromBotocoreAreAcceptedUntilTheyExpire() {
        let all = Self.cases("presign")
        #expect(all.count >= 10)
        for c in all {
            guard case .valid = Self.verify(c) else {
                Issue.record("\(c.name): \(Self.verify(c))")
                continue
            }
            #expect(Self.verify(c, path: c.target.path + "x") == .signatureMismatch, "\(c.name)")
            if let expires = c.expires {
                #expect(
                    Self.verify(c, now: c.now + expires + 1) == .expired(lifetime: expires, expiredAt: c.now + expires),
                    "\(c.name)")
            }
        }
    }

    @Test func headerSignedRequestsFromBotocoreAreAccepted() {
        let all = Self.cases("header_signing")
        #expect(all.count >= 2)
        for c in all {
            guard case .valid = Self.verify(c) else {
                Issue.record("\(c.name): \(Self.verify(c))")
                continue
            }
            #expect(Self.verify(c, path: c.target.path + "x") == .signatureMismatch, "\(c.name)")
            #expect(Self.verify(c, now: c.now + 3600) == .skewed, "\(c.name)")
        }
    }
}
