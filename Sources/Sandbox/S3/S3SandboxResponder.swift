import Crypto
import Hummingbird

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The S3 emulator's one responder: the signature first (S3's order: signature, expiry, then the object), then
/// the operation named by the method and the query.
struct S3SandboxResponder: HTTPResponder {
    typealias Context = SandboxRequestContext
    let bucket: String
    let verifier: S3SigV4Verifier
    let store: S3BucketStore

    func respond(to request: Request, context: Context) async throws -> Response {
        let response = try await route(request)
        return request.method == .head ? response.createHeadResponse() : response
    }

    private func route(_ request: Request) async throws -> Response {
        let target = RequestTarget(request.head.path ?? "/")
        let now = Int(Date().timeIntervalSince1970)
        let headers: (String) -> [String] = { name in
            if name == "host" { return request.head.authority.map { [$0] } ?? [] }
            return request.headers.filter { $0.name.canonicalName == name }.map(\.value)
        }
        let verdict = verifier.verify(
            method: request.method.rawValue, path: target.path, parameters: target.parameters,
            headers: headers, now: now)
        let payloadHash: String
        switch verdict {
        case .valid(let hash): payloadHash = hash
        case .anonymous: return S3ErrorResponse.accessDenied
        case .signatureMismatch: return S3ErrorResponse.signatureDoesNotMatch
        case .unknownAccessKey: return S3ErrorResponse.invalidAccessKeyID
        case .malformed(let message): return S3ErrorResponse.malformed(message)
        case .expired(let lifetime, let expiredAt):
            return S3ErrorResponse.expired(lifetime: lifetime, expiredAt: expiredAt, now: now)
        case .skewed:
            return S3ErrorResponse.response(
                .forbidden, code: "RequestTimeTooSkewed",
                message: "The difference between the request time and the current time is too large.")
        }
        let path = target.path.dropFirst()
        let slash = path.firstIndex(of: "/")
        guard let bucketName = S3Encoding.decodePath(path[..<(slash ?? path.endIndex)]),
            let key = S3Encoding.decodePath(slash.map { path[path.index(after: $0)...] } ?? "")
        else {
            return S3ErrorResponse.response(
                .badRequest, code: "InvalidURI", message: "Couldn't parse the specified URI.")
        }
        guard bucketName == bucket else {
            return S3ErrorResponse.response(
                .notFound, code: "NoSuchBucket", message: "The specified bucket does not exist.",
                extra: [("BucketName", bucketName)])
        }
        let query = target.parameters
        func value(_ name: String) -> String? { query.first { $0.name == name }?.value }
        var body = ByteBuffer()
        if request.method == .put || request.method == .post {
            body = try await request.body.collect(upTo: 5 << 30)
            if payloadHash.count == 64 {
                let actual = Array(SHA256.hash(data: body.readableBytesView)).hexString
                guard actual == payloadHash else {
                    return S3ErrorResponse.response(
                        .badRequest, code: "XAmzContentSHA256Mismatch",
                        message: "The provided 'x-amz-content-sha256' header does not match what was computed.")
                }
            } else if payloadHash != "UNSIGNED-PAYLOAD" {
                return S3ErrorResponse.response(
                    .notImplemented, code: "NotImplemented", message: "The sandbox does not take \(payloadHash) bodies."
                )
            }
        }
        let md5 = { (b: ByteBuffer) in "\"" + Array(Insecure.MD5.hash(data: b.readableBytesView)).hexString + "\"" }
        switch (request.method, key.isEmpty) {
        case (.get, true):
            return list(await store.list(prefix: value("prefix") ?? ""), prefix: value("prefix") ?? "")
        case (.put, false):
            if let upload = value("uploadId"), let number = value("partNumber").flatMap(Int.init) {
                guard await store.putPart(upload: upload, number: number, body) else { return noSuchUpload() }
                return Response(status: .ok, headers: [.eTag: md5(body)])
            }
            let type = request.headers[.contentType] ?? "binary/octet-stream"
            let etag = md5(body)
            await store.put(key, .init(bytes: body, contentType: type, etag: etag, lastModified: now))
            return Response(status: .ok, headers: [.eTag: etag])
        case (.post, false) where query.contains { $0.name == "uploads" }:
            let id = await store.createUpload(
                key: key, contentType: request.headers[.contentType] ?? "binary/octet-stream")
            return xml(
                "<InitiateMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>\(bucket)</Bucket>"
                    + "<Key>\(S3ErrorResponse.escape(key))</Key><UploadId>\(id)</UploadId></InitiateMultipartUploadResult>"
            )
        case (.post, false) where value("uploadId") != nil:
            guard let done = await store.complete(upload: value("uploadId")!, now: now) else { return noSuchUpload() }
            return xml(
                "<CompleteMultipartUploadResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Bucket>\(bucket)</Bucket>"
                    + "<Key>\(S3ErrorResponse.escape(done.key))</Key><ETag>\(S3ErrorResponse.escape(done.etag))</ETag></CompleteMultipartUploadResult>"
            )
        case (.delete, false):
            if let upload = value("uploadId") { await store.abort(upload: upload) } else { await store.delete(key) }
            return Response(status: .noContent)
        case (.get, false), (.head, false):
            guard let object = await store.get(key) else { return S3ErrorResponse.noSuchKey(key) }
            var bytes = object.bytes
            var status = HTTPResponse.Status.ok
            var fields: HTTPFields = [
                .eTag: object.etag, .acceptRanges: "bytes",
                .lastModified: S3Encoding.httpDate(epochSeconds: object.lastModified),
            ]
            fields[.contentType] = value("response-content-type") ?? object.contentType
            if let disposition = value("response-content-disposition") { fields[.contentDisposition] = disposition }
            if let range = request.headers[.range], let (start, end) = Self.range(range, size: bytes.readableBytes) {
                fields[.contentRange] = "bytes \(start)-\(end)/\(bytes.readableBytes)"
                bytes = bytes.getSlice(at: bytes.readerIndex + start, length: end - start + 1)!
                status = .partialContent
            }
            fields[.contentLength] = String(bytes.readableBytes)
            return Response(status: status, headers: fields, body: .init(byteBuffer: bytes))
        default:
            return S3ErrorResponse.methodNotAllowed(request.method)
        }
    }

    /// `bytes=a-b` or `bytes=a-` within `size`.
    static func range(_ text: String, size: Int) -> (Int, Int)? {
        guard text.hasPrefix("bytes="), !text.contains(",") else { return nil }
        let parts = text.dropFirst(6).split(separator: "-", omittingEmptySubsequences: false)
        guard parts.count == 2, let start = Int(parts[0]), start < size else { return nil }
        let end = parts[1].isEmpty ? size - 1 : min(Int(parts[1]) ?? -1, size - 1)
        return end >= start ? (start, end) : nil
    }

    private func list(_ objects: [(String, S3BucketStore.Object)], prefix: String) -> Response {
        var body =
            "<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Name>\(bucket)</Name>"
            + "<Prefix>\(S3ErrorResponse.escape(prefix))</Prefix><KeyCount>\(objects.count)</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>"
        for (key, object) in objects {
            body +=
                "<Contents><Key>\(S3ErrorResponse.escape(key))</Key><LastModified>\(S3Encoding.iso8601(epochSeconds: object.lastModified))</LastModified>"
                + "<ETag>\(S3ErrorResponse.escape(object.etag))</ETag><Size>\(object.bytes.readableBytes)</Size><StorageClass>STANDARD</StorageClass></Contents>"
        }
        return xml(body + "</ListBucketResult>")
    }

    private func xml(_ body: String) -> Response {
        Response(
            status: .ok, headers: [.contentType: "application/xml"],
            body: .init(byteBuffer: ByteBuffer(string: "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" + body)))
    }

    private func noSuchUpload() -> Response {
        S3ErrorResponse.response(.notFound, code: "NoSuchUpload", message: "The specified upload does not exist.")
    }
}
