/// How a ``JWTSession`` sends its login and refresh calls: one request to the session's upstream, one whole answer.
/// A protocol so that tests script the platform without a socket.
public protocol SessionTransport: Sendable {
    /// Sends `method path` (the path relative to the upstream's base URL) and returns the complete answer.
    /// Throws when no answer came (connection refused, TLS failure, timeout); an HTTP error status is an answer.
    func send(
        method: String, path: String, headers: [(String, String)], body: String
    ) async throws -> (status: Int, headers: [(String, String)], body: [UInt8])
}
