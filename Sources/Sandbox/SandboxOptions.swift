import Logging

/// How a ``SandboxServer`` listens and what it accepts.
public struct SandboxOptions: Sendable {
    /// Address to bind. Loopback by default: the sandbox is for tests and demos, never for a network.
    public var host = "127.0.0.1"
    /// Port to bind; 0 picks an ephemeral port (read it back from ``SandboxServer/port``).
    public var port = 0
    /// The only value of `x-api-key` accepted under `/api/v1/`.
    public var apiKey: String
    /// How many providers `GET /api/v1/users/providers-list/` pages through.
    public var providerCount = 57
    /// Log level of the sandbox and of the Hummingbird server under it. Quiet unless asked.
    public var logLevel: Logger.Level = .warning
    /// Origin (`scheme://host[:port]`) used in `next`/`previous` links instead of the request's `Host`,
    /// to mimic an upstream such as `https://demo-backend.withassured.com`. Nil: like Django, use `Host`.
    public var linkOrigin: String?

    public init(apiKey: String, host: String = "127.0.0.1", port: Int = 0) {
        self.apiKey = apiKey
        self.host = host
        self.port = port
    }
}

extension SandboxOptions: CustomStringConvertible {
    /// Never shows the key.
    public var description: String {
        "SandboxOptions(host: \(host), port: \(port), apiKey: <redacted>, providerCount: \(providerCount))"
    }
}
