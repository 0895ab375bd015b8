import Foundation
import NIOCore
import NIOHTTP1

/// Answers the platform's login route locally with placeholder tokens, so an unmodified SDK pointed at credgate
/// "logs in" without the real password; credgate holds the real session and swaps the token on the way out.
/// The answer has the shape the login normally has at the configured token paths (`data.jwt.access`, ...).
struct PlaceholderLoginFilter: HeadFilter, BodyFilter {
    let placeholders: PlaceholderTokens
    let accessPath: [String]
    let refreshPath: [String]?

    init(config: JWTSessionConfig, placeholders: PlaceholderTokens) {
        self.placeholders = placeholders
        self.accessPath = config.login.accessTokenPath.split(separator: ".").map(String.init)
        self.refreshPath = config.login.refreshTokenPath.map { $0.split(separator: ".").map(String.init) }
    }

    func decodeHead(_ head: inout HTTPRequestHead, context: FilterContext) -> FilterHeadResult {
        // With a body, answer once it has been read (decodeBody) so the connection stays usable.
        ProxyHandler.hasBody(context.clientHead) ? .proceed : .stop(answer())
    }

    func bodyBufferLimit(for head: HTTPRequestHead, context: FilterContext) -> Int? { 64 * 1024 }

    func decodeBody(_ body: inout ByteBuffer, head: inout HTTPRequestHead, context: FilterContext)
        -> FilterHeadResult
    {
        .stop(answer())
    }

    func answer() -> LocalResponse {
        var root: [String: Any] = [
            "msg": "Login successful (credgate placeholder session: the real session is held by credgate)",
            "extra_data": [String: Any](),
        ]
        Self.set(&root, accessPath, placeholders.mint(type: "access"))
        if let refreshPath { Self.set(&root, refreshPath, placeholders.mint(type: "refresh")) }
        let data = (try? JSONSerialization.data(withJSONObject: root, options: [.sortedKeys])) ?? Data("{}".utf8)
        return LocalResponse(
            status: .ok, headers: ["content-type": "application/json", "x-credgate-placeholder": "true"],
            body: ByteBuffer(bytes: data))
    }

    /// Sets a value at a dotted path, creating the objects on the way.
    static func set(_ object: inout [String: Any], _ path: [String], _ value: String) {
        guard let first = path.first else { return }
        if path.count == 1 {
            object[first] = value
            return
        }
        var child = object[first] as? [String: Any] ?? [:]
        set(&child, Array(path.dropFirst()), value)
        object[first] = child
    }
}
