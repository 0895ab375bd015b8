import Foundation
import NIOCore
import NIOHTTP1

/// The gateway's own endpoints under the reserved prefix `/credgate/`; never forwarded.
public struct AdminEndpoints: Sendable {
    public static let prefix = "/credgate/"

    /// What `/credgate/status` reports per credential (built from counters only: no secrets).
    let credentialStatus: @Sendable () -> [CredentialStatus]
    let startedAt = ContinuousClock.now
    /// The presign cache `DELETE /credgate/v1/cache/presign` empties.
    let presignCache: PresignCache?

    public init(credentialStatus: @escaping @Sendable () -> [CredentialStatus] = { [] }, presignCache: PresignCache? = nil) {
        self.credentialStatus = credentialStatus
        self.presignCache = presignCache
    }

    /// Whether a request path is in the reserved admin space.
    @inlinable
    public static func isAdminPath(_ path: Substring) -> Bool {
        path.hasPrefix(prefix) || path == "/credgate"
    }

    /// Answers an admin request. Health endpoints are named for what Kubernetes asks.
    public func respond(method: HTTPMethod, path: Substring, requestID: String) -> LocalResponse {
        switch (method, path) {
        case (.GET, "/credgate/healthz"), (.GET, "/credgate/liveness"), (.GET, "/credgate/readiness"),
            (.GET, "/credgate/startup"), (.HEAD, "/credgate/healthz"):
            return .json(.ok, "{\"status\":\"ok\"}", headers: ["cache-control": "no-store"])
        case (.GET, "/credgate/status"):
            return status()
        case (.DELETE, "/credgate/v1/cache/presign"):
            guard let presignCache else { return .problem(.adminNotFound(path: String(path)), requestID: requestID) }
            let removed = presignCache.count
            presignCache.removeAll()
            return .json(.ok, "{\"removed\":\(removed)}", headers: ["cache-control": "no-store"])
        default:
            return .problem(.adminNotFound(path: String(path)), requestID: requestID)
        }
    }

    /// `GET /credgate/status`: version, uptime and each credential's state. Everything in it comes from
    /// ``CredentialStatus``, which holds no token, password or response body.
    func status() -> LocalResponse {
        struct Cache: Encodable {
            let entries: Int
            let capacity: Int
            let hits: Int
            let misses: Int
            let platform_calls: Int
            let joined: Int
            let stored: Int
            let evictions: Int
        }
        struct Body: Encodable {
            let version: String
            let uptime_seconds: Int
            let credentials: [CredentialStatus]
            let presign_cache: Cache?
        }
        let cache = presignCache.map { c in
            let s = c.statistics
            return Cache(entries: c.count, capacity: c.configuration.capacity, hits: s.hits, misses: s.misses,
                         platform_calls: s.fetches, joined: s.joined, stored: s.stored, evictions: s.evictions)
        }
        let uptime = Int((ContinuousClock.now - startedAt).components.seconds)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let data = (try? encoder.encode(Body(version: CredGateVersion.string, uptime_seconds: uptime, credentials: credentialStatus(), presign_cache: cache)))
            ?? Data("{}".utf8)
        return LocalResponse(status: .ok, headers: ["content-type": "application/json", "cache-control": "no-store"],
                             body: ByteBuffer(bytes: data))
    }
}
