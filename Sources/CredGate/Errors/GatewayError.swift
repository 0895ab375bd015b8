import NIOHTTP1

/// The catalogue: everything the gateway itself can answer with instead of the platform, each a named case
/// mapped to its status, code (`X-Credgate-Error`, the problem `type`) and title in one place (``entry``), with its
/// sentence in ``detail``. Turned into `application/problem+json` by ``LocalResponse/problem(_:requestID:)``, so
/// our 502 can always be told apart from the platform's. README's error table is tested against it
/// (``catalogue``): a new case needs a row there.
enum GatewayError: Error, Sendable, Equatable {
    case noRoute(method: String, path: String)
    case methodNotAllowed(method: String, allowed: [String])
    case notAProxy(String)
    case pathTraversal
    /// A path with no single safe reading (see ``RequestPath``).
    case unsafePath(String)
    /// A `Host` header missing, repeated or malformed.
    case badHost(String)
    /// A `Connection` header naming a header credgate must keep (a credential's, `Host`, `Content-Length`).
    case connectionNamesProtectedHeader(String)
    /// The platform answered `101 Switching Protocols`, which no route allows.
    case upgradeRefused(upstream: String)
    /// The client took longer than the header timeout to send a request head.
    case headerTimeout(seconds: Int64)
    case malformedRequest(String)
    case headersTooLarge(limit: Int)
    case bodyTooLarge(limit: Int64)
    /// A body without a declared length went over the limit after part of it had been forwarded.
    case bodyTooLargeAfterForwarding(limit: Int64, forwarded: Int64)
    case upstreamUnreachable(upstream: String, reason: String)
    case upstreamReset(upstream: String)
    case upstreamTimeout(upstream: String, phase: String)
    case tooManyConnections(limit: Int)
    case tooManyConnectionsFromPeer(limit: Int)
    case adminNotFound(path: String)
    /// An upload refused before anything was sent; ``UploadRejection`` names its code and status.
    case upload(UploadRejection)
    /// An upload could not be held (in memory, then an encrypted spool file) while it was checked. `reason` is a
    /// fixed description of the I/O error.
    case spoolFailed(reason: String)
    /// A `jwt_session` credential has no token and cannot get one now (logins failing, circuit open).
    case sessionUnavailable(reason: String, retryAfterSeconds: Int)
    /// The platform rejected the session token (`upstreamStatus`, 401) and the body was over the replay cap, so
    /// the request was not sent again.
    case sessionRejectedNotReplayed(upstreamStatus: Int, replayCap: Int)
    /// A body on an `ssn_encryption` route without a usable SSN; `why` names what is wrong with it.
    case invalidSSN(why: String)
    /// An `ssn_encryption` route found no session token on the request to key the SSN with.
    case ssnNoSession
    case ssnEncryptionFailed
    /// A presign request body that is not `{"s3_url": "s3://bucket/key", "presigned_url": ""}`; `detail` says why.
    case invalidPresignRequest(detail: String)
    /// `GET /credgate/v1/files/download` without an `s3_url` (the same code as ``invalidPresignRequest(detail:)``).
    case invalidDownloadRequest
    /// The platform call a presign request waited for (another request's) failed.
    case presignFailed
    /// A filter's follow-up call (after the platform answered) failed; `reason` is ``FollowUpCall/describe(_:)``.
    case followUpFailed(reason: String)
    /// Upload-and-attach stored the file but did not attach it.
    case attachFailed(AttachFailure)
    /// The one-call WriftAI upload did not finish (a part failed after its retries, or a platform step failed).
    case uploadIncomplete(UploadIncomplete)
    /// A `POST /credgate/v1/s3/links` (or `GET /credgate/v1/s3/download/{key}`) that credgate will not sign;
    /// `detail` says why. Nothing was signed.
    case invalidS3LinkRequest(detail: String)
    /// A request on the S3 signing route for a bucket that `endpoints.s3` does not name (or for no bucket).
    case s3BucketNotAllowed(bucket: String)
    /// A request on the S3 signing route whose body carries the client's own chunk signatures, which cannot be
    /// re-signed.
    case s3RequestNotSignable(detail: String)

    /// The catalogue's one table: every case's status, code and title.
    private var entry: (status: HTTPResponseStatus, code: String, title: String) {
        switch self {
        case .noRoute: (.notFound, "no-route", "No route")
        case .methodNotAllowed: (.methodNotAllowed, "method-not-allowed", "Method not allowed")
        case .notAProxy: (.notFound, "not-a-proxy", "Not a forward proxy")
        case .pathTraversal: (.badRequest, "path-traversal", "Path not allowed")
        case .unsafePath: (.badRequest, "unsafe-path", "Path not allowed")
        case .badHost: (.badRequest, "bad-host", "Bad Host header")
        case .connectionNamesProtectedHeader:
            (.badRequest, "connection-names-protected-header", "Connection header not allowed")
        case .upgradeRefused: (.badGateway, "upgrade-refused", "Protocol upgrade refused")
        case .headerTimeout: (.requestTimeout, "header-timeout", "Request head too slow")
        case .malformedRequest: (.badRequest, "malformed-request", "Malformed request")
        case .headersTooLarge: (.requestHeaderFieldsTooLarge, "headers-too-large", "Request headers too large")
        case .bodyTooLarge, .bodyTooLargeAfterForwarding: (.payloadTooLarge, "body-too-large", "Request body too large")
        case .upstreamUnreachable: (.badGateway, "upstream-unreachable", "Upstream unreachable")
        case .upstreamReset: (.badGateway, "upstream-reset", "Upstream connection reset")
        case .upstreamTimeout: (.gatewayTimeout, "upstream-timeout", "Upstream timeout")
        case .tooManyConnections, .tooManyConnectionsFromPeer:
            (.serviceUnavailable, "too-many-connections", "Too many connections")
        case .adminNotFound: (.notFound, "admin-not-found", "No such admin endpoint")
        case .upload(let rejection): (rejection.httpStatus, rejection.code, rejection.title)
        case .spoolFailed: (.insufficientStorage, "spool-failed", "Request body could not be held")
        case .sessionUnavailable: (.serviceUnavailable, "session-unavailable", "Session unavailable")
        case .sessionRejectedNotReplayed(let upstreamStatus, _):
            (HTTPResponseStatus(statusCode: upstreamStatus), "session-rejected-not-replayed", "Session token rejected")
        case .invalidSSN: (.unprocessableEntity, "invalid-ssn", "Invalid SSN")
        case .ssnNoSession: (.internalServerError, "ssn-no-session", "No session token")
        case .ssnEncryptionFailed: (.internalServerError, "ssn-encryption-failed", "SSN encryption failed")
        case .invalidPresignRequest: (.unprocessableEntity, "invalid-presign-request", "Invalid presign request")
        case .invalidDownloadRequest: (.unprocessableEntity, "invalid-presign-request", "Invalid download request")
        case .presignFailed: (.badGateway, "presign-failed", "Presign failed")
        case .followUpFailed: (.badGateway, "follow-up-failed", "Follow-up call failed")
        case .attachFailed(let failure):
            (HTTPResponseStatus(statusCode: failure.status), "attach-failed", "File uploaded but not attached")
        case .uploadIncomplete: (.badGateway, "upload-incomplete", "Upload incomplete")
        case .invalidS3LinkRequest: (.unprocessableEntity, "invalid-link-request", "Invalid S3 link request")
        case .s3BucketNotAllowed: (.forbidden, "bucket-not-allowed", "Bucket not allowed")
        case .s3RequestNotSignable: (.badRequest, "request-not-signable", "Request cannot be signed")
        }
    }

    var status: HTTPResponseStatus { entry.status }

    /// Stable machine-readable code: the `X-Credgate-Error` header and the last part of the problem `type`.
    var code: String { entry.code }

    var title: String { entry.title }

    /// A sentence a person understands. Never contains a secret: only names, limits and paths.
    var detail: String {
        switch self {
        case .noRoute(let method, let path):
            return
                "credgate has no route for \(method) \(path), so the request was not forwarded. Check the routes in the configuration."
        case .methodNotAllowed(let method, let allowed):
            return "The route for this path does not take \(method); it takes \(allowed.joined(separator: ", "))."
        case .notAProxy(let what):
            return
                "credgate is a gateway to its configured platforms, not a forward proxy: \(what) is refused. Send origin-form requests such as 'GET /api/v1/... HTTP/1.1'."
        case .pathTraversal:
            return
                "The request path contains '.' or '..' segments (possibly percent-encoded); credgate does not forward paths that climb out of a route."
        case .unsafePath(let why):
            return
                "The request path cannot be matched to a route safely: \(why). credgate refuses such paths rather than guess how the platform would read them; send the path in its plain form."
        case .badHost(let why):
            return
                "The request's Host header is not acceptable: \(why). HTTP/1.1 requests need exactly one Host header naming a host and an optional port."
        case .connectionNamesProtectedHeader(let name):
            return
                "The Connection header names '\(name)', which credgate sets itself and will not drop on a client's say. Remove it from the Connection header."
        case .upgradeRefused(let upstream):
            return
                "Upstream '\(upstream)' answered 101 Switching Protocols. credgate forwards HTTP requests only and does not relay protocol upgrades (WebSocket, h2c) on any route."
        case .headerTimeout(let seconds):
            return
                "The request head did not arrive within \(seconds) s (listen.header_timeout), so the connection was closed."
        case .malformedRequest(let why):
            return "The request is not valid HTTP/1.1: \(why)."
        case .headersTooLarge(let limit):
            return "The request line and headers exceed the limit of \(limit) bytes."
        case .bodyTooLarge(let limit):
            return
                "The request body exceeds this route's limit of \(limit) bytes (max_body_bytes); nothing was forwarded."
        case .bodyTooLargeAfterForwarding(let limit, let forwarded):
            return
                "The request body exceeds this route's limit of \(limit) bytes (max_body_bytes). It was sent without a length, so "
                + "credgate had already forwarded \(forwarded) bytes of it when the limit was passed; it then cut the platform's "
                + "connection, so the platform received an incomplete request and no complete one."
        case .upstreamUnreachable(let upstream, let reason):
            return "credgate could not connect to upstream '\(upstream)': \(reason)."
        case .upstreamReset(let upstream):
            return "Upstream '\(upstream)' closed the connection before it answered."
        case .upstreamTimeout(let upstream, let phase):
            return "Upstream '\(upstream)' did not answer in time (\(phase))."
        case .tooManyConnectionsFromPeer(let limit):
            return
                "credgate is serving its maximum of \(limit) client connections from your address (listen.max_connections_per_peer); close some or try again shortly."
        case .tooManyConnections(let limit):
            return "credgate is serving its maximum of \(limit) client connections; try again shortly."
        case .adminNotFound(let path):
            return
                "There is no admin endpoint \(path). Paths under /credgate/ are answered by the gateway itself and never forwarded."
        case .upload(let rejection):
            return rejection.detail
        case .spoolFailed(let reason):
            return "credgate keeps an upload whole (encrypted, on local disk) until it has checked it, and could not "
                + "store this one (\(reason)). Nothing was sent to the platform."
        case .sessionUnavailable(let reason, let seconds):
            return
                "credgate cannot get a session token from the platform (\(reason)); it retries on its own. Try again in \(seconds) s."
        case .sessionRejectedNotReplayed(let upstreamStatus, let replayCap):
            return "The platform answered \(upstreamStatus) to the session token credgate sent. credgate renews the "
                + "session, but did not send this request again: its body is larger than the route's replay cap of "
                + "\(replayCap) bytes (replay_max_body_bytes). Send the request again."
        case .invalidSSN(let why):
            return why + " Nothing was sent to the platform."
        case .ssnNoSession:
            return
                "This route encrypts SSNs but has no session credential to key them with; check the route's credentials."
        case .ssnEncryptionFailed:
            return "credgate could not encrypt the SSN; nothing was sent."
        case .invalidPresignRequest(let detail):
            return detail
        case .invalidDownloadRequest:
            return
                "Say which file with ?s3_url=s3://bucket/key (percent-encode it, for example with curl -G --data-urlencode)."
        case .presignFailed:
            return "The platform call this request waited for failed. Try again."
        case .followUpFailed(let reason):
            return "credgate could not complete this request: \(reason)."
        case .attachFailed(let failure):
            return failure.detail
        case .uploadIncomplete(let failure):
            return failure.detail
        case .invalidS3LinkRequest(let detail):
            return detail + " Nothing was signed."
        case .s3BucketNotAllowed(let bucket):
            return
                (bucket.isEmpty ? "The request names no bucket" : "Bucket '\(bucket)' is not one this listener serves")
                + " (endpoints.s3.bucket, extra_buckets); credgate signs nothing else, so nothing was sent."
        case .s3RequestNotSignable(let detail):
            return detail + " Nothing was sent."
        }
    }
}

extension GatewayError: GatewayProblem {
    var httpStatus: HTTPResponseStatus { status }

    var extraMembers: [ProblemMember] {
        if case .attachFailed(let failure) = self { return failure.members }
        if case .uploadIncomplete(let failure) = self { return failure.members }
        return []
    }

    var extraHeaders: HTTPHeaders {
        switch self {
        case .methodNotAllowed(_, let allowed): return ["allow": allowed.joined(separator: ", ")]
        case .sessionUnavailable(_, let seconds): return ["retry-after": String(seconds)]
        default: return [:]
        }
    }
}
