extension GatewayError {
    /// The cases of ``GatewayError`` without their values, so the whole catalogue can be walked (``catalogue``).
    /// ``kind`` switches over every case, so a new case does not compile until it has a kind, and
    /// ``samples(of:)`` switches over every kind, so it does not compile until it has a sample.
    enum Kind: CaseIterable, Sendable {
        case noRoute, methodNotAllowed, notAProxy, pathTraversal, unsafePath, badHost, connectionNamesProtectedHeader
        case upgradeRefused, headerTimeout, malformedRequest, headersTooLarge, bodyTooLarge, bodyTooLargeAfterForwarding
        case upstreamUnreachable, upstreamReset, upstreamTimeout, tooManyConnections, tooManyConnectionsFromPeer
        case adminNotFound, upload, spoolFailed, sessionUnavailable, sessionRejectedNotReplayed, invalidSSN,
            ssnNoSession
        case ssnEncryptionFailed, invalidPresignRequest, invalidDownloadRequest, presignFailed, followUpFailed,
            attachFailed
        case uploadIncomplete, invalidS3LinkRequest, s3BucketNotAllowed, s3RequestNotSignable
    }

    var kind: Kind {
        switch self {
        case .noRoute: .noRoute
        case .methodNotAllowed: .methodNotAllowed
        case .notAProxy: .notAProxy
        case .pathTraversal: .pathTraversal
        case .unsafePath: .unsafePath
        case .badHost: .badHost
        case .connectionNamesProtectedHeader: .connectionNamesProtectedHeader
        case .upgradeRefused: .upgradeRefused
        case .headerTimeout: .headerTimeout
        case .malformedRequest: .malformedRequest
        case .headersTooLarge: .headersTooLarge
        case .bodyTooLarge: .bodyTooLarge
        case .bodyTooLargeAfterForwarding: .bodyTooLargeAfterForwarding
        case .upstreamUnreachable: .upstreamUnreachable
        case .upstreamReset: .upstreamReset
        case .upstreamTimeout: .upstreamTimeout
        case .tooManyConnections: .tooManyConnections
        case .tooManyConnectionsFromPeer: .tooManyConnectionsFromPeer
        case .adminNotFound: .adminNotFound
        case .upload: .upload
        case .spoolFailed: .spoolFailed
        case .sessionUnavailable: .sessionUnavailable
        case .sessionRejectedNotReplayed: .sessionRejectedNotReplayed
        case .invalidSSN: .invalidSSN
        case .ssnNoSession: .ssnNoSession
        case .ssnEncryptionFailed: .ssnEncryptionFailed
        case .invalidPresignRequest: .invalidPresignRequest
        case .invalidDownloadRequest: .invalidDownloadRequest
        case .presignFailed: .presignFailed
        case .followUpFailed: .followUpFailed
        case .attachFailed: .attachFailed
        case .uploadIncomplete: .uploadIncomplete
        case .invalidS3LinkRequest: .invalidS3LinkRequest
        case .s3BucketNotAllowed: .s3BucketNotAllowed
        case .s3RequestNotSignable: .s3RequestNotSignable
        }
    }

    /// Every case with example values: each kind once, every ``UploadRejection/Kind``, and `attach-failed` with
    /// both of its statuses. For tests and documentation (README's error table is checked against it).
    static var catalogue: [GatewayError] { Kind.allCases.flatMap(samples(of:)) }

    /// Example values of one kind, as a client would meet them.
    static func samples(of kind: Kind) -> [GatewayError] {
        let stored = AttachFailure.StoredUpload(
            upload: Array(#"{"file_url":"s3://bucket/key.pdf"}"#.utf8), fileURL: "s3://bucket/key.pdf",
            attachPath: "/credgate/v1/provider-documents", attachBody: #"{"provider":"p"}"#)
        switch kind {
        case .noRoute: return [.noRoute(method: "GET", path: "/admin/")]
        case .methodNotAllowed: return [.methodNotAllowed(method: "PUT", allowed: ["GET", "POST"])]
        case .notAProxy: return [.notAProxy("CONNECT")]
        case .pathTraversal: return [.pathTraversal]
        case .unsafePath: return [.unsafePath("it holds an encoded '/' (%2F)")]
        case .badHost: return [.badHost("there is more than one Host header")]
        case .connectionNamesProtectedHeader: return [.connectionNamesProtectedHeader("x-api-key")]
        case .upgradeRefused: return [.upgradeRefused(upstream: "assured")]
        case .headerTimeout: return [.headerTimeout(seconds: 10)]
        case .malformedRequest: return [.malformedRequest("Content-Length and Transfer-Encoding together")]
        case .headersTooLarge: return [.headersTooLarge(limit: 32768)]
        case .bodyTooLarge: return [.bodyTooLarge(limit: 1024)]
        case .bodyTooLargeAfterForwarding: return [.bodyTooLargeAfterForwarding(limit: 1024, forwarded: 512)]
        case .upstreamUnreachable: return [.upstreamUnreachable(upstream: "assured", reason: "connection refused")]
        case .upstreamReset: return [.upstreamReset(upstream: "assured")]
        case .upstreamTimeout: return [.upstreamTimeout(upstream: "assured", phase: "connect")]
        case .tooManyConnections: return [.tooManyConnections(limit: 1024)]
        case .tooManyConnectionsFromPeer: return [.tooManyConnectionsFromPeer(limit: 256)]
        case .adminNotFound: return [.adminNotFound(path: "/credgate/nothing")]
        case .upload:
            return UploadRejection.Kind.allCases.map { .upload(UploadRejection($0, "The upload was refused.")) }
        case .spoolFailed: return [.spoolFailed(reason: "an I/O error")]
        case .sessionUnavailable: return [.sessionUnavailable(reason: "login circuit open", retryAfterSeconds: 30)]
        case .sessionRejectedNotReplayed: return [.sessionRejectedNotReplayed(upstreamStatus: 401, replayCap: 1 << 20)]
        case .invalidSSN: return [.invalidSSN(why: "\"ssn\" must be nine digits.")]
        case .ssnNoSession: return [.ssnNoSession]
        case .ssnEncryptionFailed: return [.ssnEncryptionFailed]
        case .invalidPresignRequest: return [.invalidPresignRequest(detail: "The body has no 's3_url'.")]
        case .invalidDownloadRequest: return [.invalidDownloadRequest]
        case .presignFailed: return [.presignFailed]
        case .followUpFailed: return [.followUpFailed(reason: "cancelled")]
        case .attachFailed:
            return [
                .attachFailed(.noFileURL(uploadStatus: 201, upload: Array("{}".utf8))),
                .attachFailed(
                    .refused(platformStatus: 400, platformAnswer: Array(#"{"provider":["bad"]}"#.utf8), stored: stored)),
                .attachFailed(.unreachable(reason: "connection refused", stored: stored)),
            ]
        case .uploadIncomplete:
            return [
                .uploadIncomplete(
                    UploadIncomplete(
                        uploadID: "upl_1", failedParts: [3], partCount: 4,
                        reason: "a part could not be sent to its upload URL."))
            ]
        case .invalidS3LinkRequest:
            return [.invalidS3LinkRequest(detail: "\"expires_in\" must be 1 to 604800 seconds.")]
        case .s3BucketNotAllowed: return [.s3BucketNotAllowed(bucket: "other-bucket")]
        case .s3RequestNotSignable:
            return [.s3RequestNotSignable(detail: "The body is chunk-signed (STREAMING-AWS4-HMAC-SHA256-PAYLOAD).")]
        }
    }
}
