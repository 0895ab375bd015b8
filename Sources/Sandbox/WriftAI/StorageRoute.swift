import Foundation
import Hummingbird

extension WriftAIResponder {
    /// `/sandbox-s3/<bucket>/<key>`: the storage behind WriftAI's presigned URLs.
    ///
    /// `PUT` (a part, with `partNumber` and `uploadId` in the query, or a one-step upload) is checked as S3 checks a
    /// presigned PUT whose `Content-Length` and `Content-Type` are signed: an `Authorization` header is refused
    /// (403: the URL is the only credential, and a bearer token must never reach the storage), then the signature
    /// (403 `SignatureDoesNotMatch`, also for a `Content-Length` or `Content-Type` other than the signed ones, the
    /// message saying which), a missing `Content-Length` (411), then the expiry (403 "Request has expired"). A
    /// stored part answers 200 with its `ETag` (the MD5 of its bytes, quoted).
    ///
    /// `GET`/`HEAD` serve a completed file through its signed download URL.
    func storage(_ request: Request, target: RequestTarget, recorded: inout RecordedRequest) async throws -> Response {
        let rest = target.path.dropFirst(Presigner.pathPrefix.count)
        guard let slash = rest.firstIndex(of: "/"), let bucket = S3Encoding.decodePath(rest[..<slash]),
            let key = S3Encoding.decodePath(rest[rest.index(after: slash)...]), !bucket.isEmpty, !key.isEmpty
        else {
            return S3ErrorResponse.response(
                .badRequest, code: "InvalidRequest", message: "The request path names no bucket and key.")
        }
        switch request.method {
        case .get, .head:
            return await download(request, target: target, bucket: bucket, key: key)
        case .put:
            let response = try await put(request, target: target, bucket: bucket, key: key, recorded: &recorded)
            if response.status != .ok { await state.counters.count(\.putRejections) }
            return response
        default:
            var response = S3ErrorResponse.methodNotAllowed(request.method)
            response.headers[.allow] = "GET, HEAD, PUT"
            return response
        }
    }

    private func download(_ request: Request, target: RequestTarget, bucket: String, key: String) async -> Response {
        let now = Date().timeIntervalSince1970
        if let refusal = Self.refusal(
            state.presigner.verify(bucket: bucket, key: key, parameters: target.parameters, now: now), now: now)
        {
            return refusal
        }
        guard bucket == state.bucket, let object = await state.objects.get(bucket: bucket, key: key) else {
            return S3ErrorResponse.noSuchKey(key)
        }
        if request.method == .get { await state.counters.count(\.downloads) }
        var headers: HTTPFields = [
            .contentType: object.contentType ?? "application/octet-stream",
            .eTag: object.etag,
            .lastModified: S3Encoding.httpDate(epochSeconds: object.lastModified),
            .acceptRanges: "bytes",
        ]
        headers[.contentLength] = String(object.bytes.readableBytes)
        return Response(status: .ok, headers: headers, body: SandboxResponder.chunked(object.bytes))
    }

    private func put(
        _ request: Request, target: RequestTarget, bucket: String, key: String, recorded: inout RecordedRequest
    ) async throws -> Response {
        guard request.headers[.authorization] == nil else {
            return S3ErrorResponse.response(
                .forbidden, code: "AccessDenied",
                message:
                    "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, Signature query string "
                    + "parameter or the Authorization header should be specified. A presigned URL takes no Authorization header."
            )
        }
        // What the URL was signed for: a part of an upload, or a one-step upload's single PUT.
        let query = target.parameters
        func single(_ name: String) -> String? {
            let values = query.filter { $0.name == name }
            return values.count == 1 ? values[0].value : nil
        }
        let expected: (length: Int, contentType: String)
        let part: (upload: String, number: Int)?
        if let uploadID = single("uploadId") {
            guard let upload = await state.uploads.upload(uploadID), bucket == state.bucket, key == upload.key else {
                return S3ErrorResponse.response(
                    .notFound, code: "NoSuchUpload",
                    message:
                        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed.",
                    extra: [("UploadId", uploadID)])
            }
            guard let number = single("partNumber").flatMap({ Int($0) }), (1...upload.partCount).contains(number) else {
                return S3ErrorResponse.response(
                    .badRequest, code: "InvalidArgument",
                    message: "Part number must be an integer between 1 and \(upload.partCount), inclusive")
            }
            guard upload.completedWith == nil else {
                return S3ErrorResponse.response(
                    .notFound, code: "NoSuchUpload", message: "The specified upload has been completed.",
                    extra: [("UploadId", uploadID)])
            }
            expected = (upload.length(ofPart: number), upload.mimeType)
            part = (uploadID, number)
        } else if bucket == state.bucket, let upload = await state.uploads.single(key: key) {
            expected = (upload.size, upload.mimeType)
            part = nil
        } else {
            // Nothing was ever signed for this object.
            return S3ErrorResponse.signatureDoesNotMatch
        }

        let now = Date().timeIntervalSince1970
        let signedHeaders = ["content-length": String(expected.length), "content-type": expected.contentType]
        let verdict = state.presigner.verify(
            bucket: bucket, key: key, parameters: query, now: now, method: "PUT", headers: { signedHeaders[$0] })
        if case .expired = verdict {
            // Checked after the headers: they are part of the signature, which S3 checks first.
        } else if let refusal = Self.refusal(verdict, now: now) {
            return refusal
        }
        let givenType = request.headers[.contentType]
        guard givenType == expected.contentType else {
            return Self.headerMismatch("Content-Type", signed: expected.contentType, given: givenType)
        }
        guard let rawLength = request.headers[.contentLength] else {
            return S3ErrorResponse.response(
                .lengthRequired, code: "MissingContentLength",
                message: "You must provide the Content-Length HTTP header.")
        }
        guard Int(rawLength) == expected.length else {
            return Self.headerMismatch("Content-Length", signed: String(expected.length), given: rawLength)
        }
        if let refusal = Self.refusal(verdict, now: now) {
            return refusal
        }

        var bytes = try await request.body.collect(upTo: max(expected.length, 1))
        recorded.bodyBytes = bytes.readableBytes
        recorded.bodySHA256 = Self.sha256(bytes)
        guard bytes.readableBytes == expected.length else {
            return S3ErrorResponse.response(
                .badRequest, code: "IncompleteBody",
                message: "You did not provide the number of bytes specified by the Content-Length HTTP header.")
        }
        bytes = bytes.slice()
        let etag = UploadStore.etag(of: bytes)
        if let part {
            guard await state.uploads.storePart(uploadID: part.upload, number: part.number, bytes: bytes, etag: etag)
            else {
                return S3ErrorResponse.response(
                    .notFound, code: "NoSuchUpload", message: "The specified upload does not exist.")
            }
            await state.counters.count(\.partPuts)
        } else {
            await state.objects.put(
                bucket: bucket, key: key,
                StoredObject(
                    bytes: bytes, contentType: expected.contentType, sha256: Self.sha256(bytes), etag: etag,
                    lastModified: Int(now)))
            await state.counters.count(\.singlePuts)
        }
        var response = Response(status: .ok, headers: [.eTag: etag])
        response.headers[.contentLength] = "0"
        return response
    }

    /// S3's answer to a URL that does not authorise the request; nil when it does.
    static func refusal(_ verdict: Presigner.Verdict, now: Double) -> Response? {
        switch verdict {
        case .valid: nil
        case .anonymous: S3ErrorResponse.accessDenied
        case .signatureMismatch: S3ErrorResponse.signatureDoesNotMatch
        case .unknownAccessKey: S3ErrorResponse.invalidAccessKeyID
        case .malformed(let message): S3ErrorResponse.malformed(message)
        case .expired(let lifetime, let expiredAt):
            S3ErrorResponse.expired(lifetime: lifetime, expiredAt: expiredAt, now: Int(now))
        }
    }

    /// 403 `SignatureDoesNotMatch` for a signed header sent with another value (or not sent).
    private static func headerMismatch(_ name: String, signed: String, given: String?) -> Response {
        S3ErrorResponse.response(
            .forbidden, code: "SignatureDoesNotMatch",
            message:
                "The request signature we calculated does not match the signature you provided. Check your key and signing method.",
            extra: [("SignedHeader", name), ("Signed", signed), ("Provided", given ?? "(none)")])
    }
}
