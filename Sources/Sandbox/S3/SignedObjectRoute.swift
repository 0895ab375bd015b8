import Hummingbird

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

extension SandboxResponder {
    /// `GET`/`HEAD /sandbox-s3/<bucket>/<key>?<presigned query>`: the sandbox's stand-in for S3 behind presigned
    /// URLs. No API key: the signature is the credential. Checked in S3's order: signature (403
    /// `SignatureDoesNotMatch`), expiry (403 `AccessDenied`, "Request has expired"), then the object (404
    /// `NoSuchKey`). A HEAD is accepted with a URL signed for GET (S3 itself would want one signed for HEAD).
    func signedObject(_ request: Request, target: RequestTarget) async -> Response {
        guard request.method == .get || request.method == .head else {
            return S3ErrorResponse.methodNotAllowed(request.method)
        }
        let rest = target.path.dropFirst(Presigner.pathPrefix.count)
        guard let slash = rest.firstIndex(of: "/"), let bucket = S3Encoding.decodePath(rest[..<slash]),
            let key = S3Encoding.decodePath(rest[rest.index(after: slash)...]), !bucket.isEmpty, !key.isEmpty
        else {
            return S3ErrorResponse.response(
                .badRequest, code: "InvalidRequest", message: "The request path names no bucket and key.")
        }
        let now = Date().timeIntervalSince1970
        switch state.presigner.verify(bucket: bucket, key: key, parameters: target.parameters, now: now) {
        case .valid:
            break
        case .anonymous:
            return S3ErrorResponse.accessDenied
        case .signatureMismatch:
            return S3ErrorResponse.signatureDoesNotMatch
        case .unknownAccessKey:
            return S3ErrorResponse.invalidAccessKeyID
        case .malformed(let message):
            return S3ErrorResponse.malformed(message)
        case .expired(let lifetime, let expiredAt):
            return S3ErrorResponse.expired(lifetime: lifetime, expiredAt: expiredAt, now: Int(now))
        }
        guard let object = await state.objects.get(bucket: bucket, key: key) else {
            return S3ErrorResponse.noSuchKey(key)
        }
        var headers: HTTPFields = [
            .contentType: object.contentType ?? "application/octet-stream",
            .eTag: object.etag,
            .lastModified: S3Encoding.httpDate(epochSeconds: object.lastModified),
            .acceptRanges: "bytes",
        ]
        headers[.contentLength] = String(object.bytes.readableBytes)
        return Response(status: .ok, headers: headers, body: Self.chunked(object.bytes))
    }

    /// The stored bytes written in 64 KiB slices of the one buffer (no copies), each write waiting for the
    /// connection to drain.
    static func chunked(_ bytes: ByteBuffer) -> ResponseBody {
        ResponseBody(contentLength: bytes.readableBytes) { writer in
            var rest = bytes
            while let slice = rest.readSlice(length: min(SandboxPayload.chunkSize, rest.readableBytes)),
                slice.readableBytes > 0
            {
                try await writer.write(slice)
            }
            try await writer.finish(nil)
        }
    }
}
