import NIOHTTP1

/// The gateway's own endpoints under the reserved prefix `/credgate/`; never forwarded.
public struct AdminEndpoints: Sendable {
    public static let prefix = "/credgate/"

    public init() {}

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
        default:
            return .problem(.adminNotFound(path: String(path)), requestID: requestID)
        }
    }
}
