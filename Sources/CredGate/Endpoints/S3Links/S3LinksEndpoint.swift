import Crypto
import Foundation
import NIOCore
import NIOHTTP1

/// credgate's S3 links, minted with the keys the app does not hold (keg-storage's `link_to` over HTTP):
///
/// - `POST /credgate/v1/s3/links` with a JSON ``S3LinkRequest`` answers `{"url", "method", "key", "expires_at",
///   "headers"}`;
/// - `GET /credgate/v1/s3/download/{key}` (`?expires_in=`, `?filename=` for a download name) answers `302` to a
///   download link, for `curl -L` and browsers.
///
/// Everything is answered here: nothing is forwarded, and a request that fails a check is a 422 problem with
/// nothing signed. Download links come from the ``PresignCache`` while they have their safety margin left (same
/// `X-Cache`, `Age` and `Cache-Control` as the platform presign cache); upload and remove links are always new.
struct S3LinksEndpoint: HeadFilter, BodyFilter {
    static let linksPath = "/credgate/v1/s3/links"
    static let downloadPattern = "/credgate/v1/s3/download/**"
    static let downloadPrefix = "/credgate/v1/s3/download/"
    /// A links request is a few hundred bytes.
    static let requestLimit = 16 * 1024

    let signer: S3LinkSigner
    let cache: PresignCache
    /// Whose links these are (keys, endpoint, bucket, addressing), hashed: cache entries are never shared across them.
    let identity: String
    let now: @Sendable () -> Date

    init(signer: S3LinkSigner, cache: PresignCache, now: @escaping @Sendable () -> Date = { Date() }) {
        self.signer = signer
        self.cache = cache
        self.now = now
        var hasher = SHA256()
        for part in [
            signer.credentials.accessKeyID, signer.credentials.secretAccessKey.reveal(),
            signer.credentials.sessionToken?.reveal() ?? "", signer.credentials.region, signer.endpoint.description,
            signer.config.bucket, signer.config.addressing.rawValue,
        ] {
            hasher.update(data: Data(part.utf8))
            hasher.update(data: Data([0]))
        }
        identity = hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }

    func decodeHead(_ head: inout HTTPRequestHead, context: FilterContext) -> FilterHeadResult {
        if head.method == .GET {
            switch Self.downloadRequest(uri: context.clientHead.uri, config: signer.config) {
            case .failure(let problem): return .problem(.invalidS3LinkRequest(detail: problem.description), context)
            case .success(let request): return .stop(respond(request, redirect: true, context: context))
            }
        }
        let announced =
            head.headers.contains(name: "transfer-encoding")
            || (head.headers.first(name: "content-length").flatMap { Int($0) } ?? 0) > 0
        // Without a body the transport would not call decodeBody: answer here, never forward.
        guard announced else {
            return .problem(
                .invalidS3LinkRequest(
                    detail: "The body must be a JSON object such as {\"operation\": \"download\", \"key\": \"a.pdf\"}."),
                context)
        }
        return .proceed
    }

    func bodyBufferLimit(for head: HTTPRequestHead, context: FilterContext) -> Int? { Self.requestLimit }

    func decodeBody(_ body: inout ByteBuffer, head: inout HTTPRequestHead, context: FilterContext) -> FilterHeadResult {
        do throws(S3LinkRequest.Problem) {
            let request = try S3LinkRequest.parse(json: Array(body.readableBytesView), config: signer.config)
            return .stop(respond(request, redirect: false, context: context))
        } catch {
            return .problem(.invalidS3LinkRequest(detail: error.description), context)
        }
    }

    /// `GET /credgate/v1/s3/download/{key}?expires_in=&filename=` as a download ``S3LinkRequest``.
    static func downloadRequest(uri: String, config: S3Config) -> Result<S3LinkRequest, S3LinkRequest.Problem> {
        let pathEnd = uri.firstIndex(of: "?") ?? uri.endIndex
        let rawKey = uri[..<pathEnd].dropFirst(downloadPrefix.count)
        guard uri.hasPrefix(downloadPrefix), let key = String(rawKey).removingPercentEncoding else {
            return .failure(.init("Name the object after /credgate/v1/s3/download/, percent-encoded."))
        }
        do throws(S3LinkRequest.Problem) {
            try S3LinkRequest.checkKey(key, config: config)
        } catch {
            return .failure(error)
        }
        var request = S3LinkRequest(operation: .download, key: key, expiresIn: config.defaultLifetime)
        if let text = PresignDownloadEndpoint.queryValue("expires_in", in: uri) {
            guard let seconds = Int(text), (1...config.maximumLifetime).contains(seconds) else {
                return .failure(.init("expires_in must be 1 to \(config.maximumLifetime) seconds."))
            }
            request.expiresIn = seconds
        }
        if let name = PresignDownloadEndpoint.queryValue("filename", in: uri) {
            guard let clean = S3ObjectName.sanitised(name) else {
                return .failure(.init("filename has nothing left once sanitised."))
            }
            request.downloadFilename = clean
        }
        return .success(request)
    }

    // MARK: - Answers

    private func respond(_ request: S3LinkRequest, redirect: Bool, context: FilterContext) -> LocalResponse {
        let cacheKey =
            request.operation == .download
            ? S3URI(validating: "s3://\(signer.config.bucket)/\(request.key)").map {
                PresignCacheKey(
                    object: $0,
                    identity: identity
                        + "|\(request.expiresIn)|\(request.downloadFilename ?? "")|\(request.contentType ?? "")")
            } : nil
        guard let cacheKey else { return fresh(request, redirect: redirect, context: context, ticket: nil) }
        switch cache.claim(key: cacheKey, whenJoinedCallCompletes: { _ in }) {
        case .hit(let hit):
            let headers: HTTPHeaders = [
                "x-cache": "HIT", "age": String(hit.age), "cache-control": "private, max-age=\(hit.secondsLeft)",
            ]
            return answer(
                url: hit.presignedURL, request: request, expiresAt: hit.expiresAt, required: [], redirect: redirect,
                headers: headers)
        case .lead(let ticket):
            return fresh(request, redirect: redirect, context: context, ticket: ticket)
        case .joined:
            // Another request is signing the same link this instant; signing costs microseconds, so sign again.
            return fresh(request, redirect: redirect, context: context, ticket: nil)
        }
    }

    private func fresh(_ request: S3LinkRequest, redirect: Bool, context: FilterContext, ticket: PresignCacheTicket?)
        -> LocalResponse
    {
        let link: AWSSigV4.PresignedURL
        do throws(AWSSigV4.SigningError) {
            link = try signer.sign(request, at: now())
        } catch {
            ticket?.fail(error)
            return .problem(.invalidS3LinkRequest(detail: error.description), requestID: context.requestID)
        }
        var headers: HTTPHeaders = ["x-cache": "MISS"]
        if let ticket {
            let fetched = ticket.complete(
                status: 200, body: Array("{\"presigned_url\":\(JSONString.quote(link.url))}".utf8))
            headers.add(
                name: "cache-control", value: fetched.secondsLeft.map { "private, max-age=\($0)" } ?? "no-store")
        } else {
            headers.add(name: "cache-control", value: "no-store")
        }
        return answer(
            url: link.url, request: request, expiresAt: link.expiresAt, required: link.requiredHeaders,
            redirect: redirect, headers: headers)
    }

    private func answer(
        url: String, request: S3LinkRequest, expiresAt: Date, required: [AWSSigV4.HeaderField], redirect: Bool,
        headers: HTTPHeaders
    ) -> LocalResponse {
        if redirect { return PresignCacheFilter.redirect(to: url, headers: headers) }
        let json = S3LinkSigner.answer(
            url: url, method: request.operation.method, key: request.key, expiresAt: expiresAt, headers: required)
        return .json(.ok, json, headers: headers)
    }
}
