import NIOCore
import NIOHTTP1

/// Writes the session's access token into its header (`Authorization: Bearer <jwt>`), waits for a login when
/// there is no valid token yet, answers 503 with `Retry-After` while logins are failing, and asks for one replay
/// when the platform rejects the token it sent.
struct JWTSessionFilter: SplicingFilter, ReplayFilter {
    let session: JWTSession
    /// The header the session's token goes in (written in the session's `format`: ``SessionToken/headerValue``).
    let header: String
    /// Where the token sent with this request is remembered (read again when the platform answers 401).
    let tokenKey: ScratchKey<SessionToken>
    /// Set once the request waited for a login, so it does not wait in a loop.
    let waitedKey: ScratchKey<Bool>
    /// Set once the request was replayed after a 401.
    let replayedKey: ScratchKey<Bool>

    init(name: String, session: JWTSession, config: JWTSessionConfig) {
        self.session = session
        self.header = config.header
        self.tokenKey = ScratchKey("jwt_session.\(name).token")
        self.waitedKey = ScratchKey("jwt_session.\(name).waited")
        self.replayedKey = ScratchKey("jwt_session.\(name).replayed")
    }

    func decodeHead(_ head: inout HTTPRequestHead, context: FilterContext) -> FilterHeadResult {
        if let token = session.currentToken() {
            head.headers.replaceOrAdd(name: header, value: token.headerValue.reveal())
            context.scratch[tokenKey] = token
            return .proceed
        }
        if let unavailable = session.unavailable() {
            return .stop(Self.unavailableResponse(unavailable, requestID: context.requestID))
        }
        // Waited once already and still nothing usable: do not spin.
        if context.scratch[waitedKey] != nil {
            let retry = SessionUnavailable(retryAfter: .seconds(1), reason: "no session token could be obtained")
            return .stop(Self.unavailableResponse(retry, requestID: context.requestID))
        }
        context.scratch[waitedKey] = true
        let promise = context.eventLoop.makePromise(of: Void.self)
        let session = self.session
        promise.completeWithTask { _ = try? await session.validToken() }
        return .retryAfter(promise.futureResult)
    }

    func splice(into head: inout ByteBuffer) -> SpliceOutcome {
        guard let token = session.currentToken() else { return .fullPath }
        head.writeHeaderLine(header, token.headerValue.reveal())
        return .splicedSession(token)
    }

    /// The platform answered 401 to a fast-path request that carried `token`: the session drops it (as
    /// ``upstreamResponded(_:context:)`` does), and the request goes again through the full path.
    func splicedTokenRejected(_ token: SessionToken) {
        session.rejected(token)
    }

    func upstreamResponded(_ head: HTTPResponseHead, context: FilterContext) -> UpstreamVerdict {
        // Once per request: a second 401 (after a retry of another filter) goes to the client.
        guard head.status == .unauthorized, let token = context.scratch[tokenKey], context.scratch[replayedKey] == nil
        else {
            return .forward
        }
        context.scratch[replayedKey] = true
        session.rejected(token)
        context.scratch[waitedKey] = nil
        return .replay
    }

    static func unavailableResponse(_ unavailable: SessionUnavailable, requestID: String) -> LocalResponse {
        let seconds = max(
            1,
            Int(
                (Double(unavailable.retryAfter.components.seconds) + Double(
                    unavailable.retryAfter.components.attoseconds) / 1e18).rounded(.up)))
        return .problem(
            .sessionUnavailable(reason: unavailable.reason, retryAfterSeconds: seconds), requestID: requestID)
    }
}
