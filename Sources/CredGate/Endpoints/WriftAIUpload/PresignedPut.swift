import AsyncHTTPClient
import NIOCore
import NIOHTTP1

/// Sends a body to a presigned storage URL with `PUT`, retrying a failure (a `PUT` of the same bytes to the same
/// URL is idempotent).
///
/// The request carries exactly `Content-Type` and the `Content-Length` of its body (AsyncHTTPClient sets it from a
/// known length) and nothing that identifies the caller: the URL is its own credential, and the platform's
/// bearer token must never reach the storage host. AsyncHTTPClient rather than the data path's pool: the URLs
/// are absolute, on hosts no route names.
struct PresignedPut: Sendable {
    let client: HTTPClient
    /// Sends after the first.
    let retries: Int
    /// Whether a `2xx` must carry an `ETag` (the three-step flow completes with them).
    var requireETag = true

    /// Why a `PUT` failed, in words safe for a problem body (never the URL: it is a credential while it lives).
    enum Failure: Error, Equatable {
        case status(Int)
        case noETag
        case unreachable
        /// The body could not be read back from the spool (not the storage's fault; not retried).
        case spoolUnreadable

        var reason: String {
            switch self {
            case .status(let code): "the storage answered \(code)"
            case .noETag: "the storage's answer had no ETag"
            case .unreachable: "the storage could not be reached or closed the connection"
            case .spoolUnreadable: "the spooled upload could not be read back"
            }
        }
    }

    /// Sends the body `makeBody` makes (once per attempt) to `url`; the answer's `ETag` on success (`""` when none
    /// was needed and none came).
    func send(url: String, contentType: String, makeBody: @Sendable () -> HTTPClientRequest.Body) async -> Result<
        String, Failure
    > {
        var last = Failure.unreachable
        for attempt in 0...retries {
            if attempt > 0 {
                // A short pause, longer each time, lets a storage node that failed come back.
                try? await Task.sleep(for: .milliseconds(100 * attempt * attempt))
            }
            if Task.isCancelled { return .failure(last) }
            var request = HTTPClientRequest(url: url)
            request.method = .PUT
            request.headers = ["content-type": contentType]
            request.body = makeBody()
            do {
                // The whole call is bounded by the client's read timeout between bytes, not by a total: a large
                // part on a slow link may take long and still be making progress.
                let response = try await client.execute(request, timeout: .hours(24))
                _ = try? await response.body.collect(upTo: 1 << 20)
                guard (200..<300).contains(response.status.code) else {
                    last = .status(Int(response.status.code))
                    continue
                }
                let etag = response.headers.first(name: "etag")
                if requireETag, etag == nil || etag!.isEmpty {
                    last = .noETag
                    continue
                }
                return .success(etag ?? "")
            } catch is SpoolRange.ReadFailed {
                return .failure(.spoolUnreadable)
            } catch {
                last = .unreachable
            }
        }
        return .failure(last)
    }

    /// The client every upload shares: no redirects (a presigned URL that redirects is not followed with the
    /// body), no decompression, HTTP/1.1, a connect and a between-bytes read timeout. Lives as long as the process.
    static let sharedClient: HTTPClient = {
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow, timeout: .init(connect: .seconds(10), read: .seconds(60)),
            decompression: .disabled)
        configuration.httpVersion = .http1Only
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 64
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()
}
