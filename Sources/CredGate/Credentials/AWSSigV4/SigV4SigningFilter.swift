import Foundation
import NIOCore
import NIOHTTP1

/// The S3 signing route (what awslabs/aws-sigv4-proxy does, as a credential on a route): an app's S3 request, signed
/// with dummy keys or not at all, is re-signed with the real keys for the configured endpoint.
///
/// - The client's `Authorization` and `X-Amz-Date`, `X-Amz-Security-Token`, `X-Amz-Content-SHA256` are dropped
///   (``StripClientCredentials`` has already removed `Authorization`); the signer writes its own.
/// - Only the configured buckets are reachable: any other bucket (or `/`, ListBuckets) is a 403 problem and
///   nothing is sent.
/// - Path-style addressing; the path and query are re-encoded canonically, so what is signed is what is sent.
/// - A small body with a declared length (up to ``hashedBodyLimit``) is held and signed with its SHA-256, so S3
///   checks it; a larger one is signed as `UNSIGNED-PAYLOAD` and streamed (memory stays flat whatever its size); a client's
///   `STREAMING-UNSIGNED-PAYLOAD-TRAILER` (aws-chunked with an unsigned checksum trailer) is kept as it is; a
///   body chunk-signed with the client's own (dummy) key cannot be re-signed and is refused.
/// - Signed headers: `host`, `content-type`, `content-md5` and every `x-amz-*` the client sent (S3 requires the
///   latter to be signed), plus what the signer adds. Headers the transport adds later (`Via`, `X-Forwarded-*`,
///   `X-Request-ID`) are not signed, which S3 allows.
struct SigV4SigningFilter: HeadFilter, BodyFilter {
    let credentials: AWSSigV4.Credentials
    let endpoint: AWSSigV4.S3Endpoint
    let buckets: Set<String>
    let now: @Sendable () -> Date

    /// The client's signing headers, replaced by the signer's.
    static let clientSigningHeaders = ["authorization", "x-amz-date", "x-amz-security-token", "x-amz-content-sha256"]
    static let trailerPayload = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    /// Bodies up to this size (with a `Content-Length`) are signed with their hash; larger ones stream unsigned.
    static let hashedBodyLimit = 64 * 1024
    /// The request as signed from the head, for signing again with the body's hash.
    static let signedKey = ScratchKey<AWSSigV4.SignableRequest>("sigv4.signed")

    init(
        credentials: AWSSigV4.Credentials, endpoint: AWSSigV4.S3Endpoint, buckets: Set<String>,
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.credentials = credentials
        self.endpoint = endpoint
        self.buckets = buckets
        self.now = now
    }

    func decodeHead(_ head: inout HTTPRequestHead, context: FilterContext) -> FilterHeadResult {
        guard let target = S3RequestTarget(uri: head.uri) else {
            return .problem(.malformedRequest("the request target is not valid percent-encoded UTF-8"), context)
        }
        guard buckets.contains(target.bucket) else {
            return .problem(.s3BucketNotAllowed(bucket: target.bucket), context)
        }
        let clientPayload = head.headers.first(name: "x-amz-content-sha256")
        if let clientPayload, clientPayload.hasPrefix("STREAMING-"), clientPayload != Self.trailerPayload {
            return .problem(
                .s3RequestNotSignable(
                    detail: "The body is chunk-signed (\(clientPayload)) with the client's own key, "
                        + "which credgate cannot re-sign; configure the client for unsigned payloads (boto3 and the aws CLI do this by default over http)."
                ), context)
        }
        let address: AWSSigV4.S3ObjectAddress
        do {
            address = try AWSSigV4.S3ObjectAddress(
                endpoint: endpoint, bucket: target.bucket, key: target.key, style: .path)
        } catch {
            return .problem(.s3BucketNotAllowed(bucket: target.bucket), context)
        }
        for name in Self.clientSigningHeaders { head.headers.remove(name: name) }
        let hasBody =
            head.headers.contains(name: "transfer-encoding")
            || (head.headers.first(name: "content-length").flatMap { Int64($0) } ?? 0) > 0
        let payload: AWSSigV4.PayloadHash =
            clientPayload == Self.trailerPayload ? .sha256(hex: Self.trailerPayload) : hasBody ? .unsigned : .empty
        let signedFields = head.headers.compactMap { field -> AWSSigV4.HeaderField? in
            let name = field.name.lowercased()
            guard name.hasPrefix("x-amz-") || name == "content-type" || name == "content-md5" else { return nil }
            return AWSSigV4.HeaderField(name, field.value)
        }
        let request = AWSSigV4.SignableRequest(
            method: head.method.rawValue, address: address, query: target.query,
            headers: signedFields, payloadHash: payload)
        let signed = AWSSigV4.sign(request, credentials: credentials, at: now())
        head.uri = request.requestTarget
        for field in signed.fields { head.headers.replaceOrAdd(name: field.name, value: field.value) }
        if payload == .unsigned { context.scratch[Self.signedKey] = request }
        return .proceed
    }

    /// A small body with a declared length is held whole so it can be signed with its hash.
    func bodyBufferLimit(for head: HTTPRequestHead, context: FilterContext) -> Int? {
        guard context.scratch[Self.signedKey] != nil, !head.headers.contains(name: "transfer-encoding"),
            let length = head.headers.first(name: "content-length").flatMap(Int.init), length <= Self.hashedBodyLimit
        else { return nil }
        return Self.hashedBodyLimit
    }

    func decodeBody(_ body: inout ByteBuffer, head: inout HTTPRequestHead, context: FilterContext)
        -> FilterHeadResult
    {
        guard var request = context.scratch[Self.signedKey] else { return .proceed }
        request.payloadHash = .of(body.readableBytesView)
        let signed = AWSSigV4.sign(request, credentials: credentials, at: now())
        for field in signed.fields { head.headers.replaceOrAdd(name: field.name, value: field.value) }
        return .proceed
    }
}
