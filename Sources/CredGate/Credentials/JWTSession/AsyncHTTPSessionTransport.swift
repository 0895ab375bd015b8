import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// Sends a session's login and refresh calls to its upstream with AsyncHTTPClient: the upstream's base URL and
/// path prefix, its CA file for TLS, HTTP/1.1 only, no redirects (a login that redirects is a failure to see,
/// not to follow with the password), and the upstream's connect and response timeouts.
///
/// Many sessions share one `HTTPClient`; make it with ``makeClientConfiguration(connectTimeout:readTimeout:)``.
public struct AsyncHTTPSessionTransport: SessionTransport {
    /// Largest answer read: a login answer is a few hundred bytes, and a larger one is refused, not buffered.
    public static let maxAnswerBytes = 1 << 20

    public let upstream: UpstreamConfig
    private let client: HTTPClient
    private let tls: TLSConfiguration?
    private let logger: Logger?

    /// `client` should be configured with ``makeClientConfiguration(connectTimeout:readTimeout:)``; its owner
    /// shuts it down after every session using it has shut down.
    public init(upstream: UpstreamConfig, client: HTTPClient, logger: Logger? = nil) {
        self.upstream = upstream
        self.client = client
        self.logger = logger
        if upstream.url.scheme == .https {
            var tls = TLSConfiguration.makeClientConfiguration()
            tls.applicationProtocols = ["http/1.1"]
            tls.certificateVerification = .fullVerification
            if let caFile = upstream.caFile { tls.trustRoots = .file(caFile) }
            self.tls = tls
        } else {
            self.tls = nil
        }
    }

    /// A client configuration for session calls: HTTP/1.1 only, redirects not followed, no decompression.
    /// Timeouts are the client's defaults for connect and read; each call is also bounded as a whole by its
    /// upstream's `connect_timeout + response_timeout`.
    public static func makeClientConfiguration(
        connectTimeout: TimeAmount = .seconds(5), readTimeout: TimeAmount = .seconds(60)
    ) -> HTTPClient.Configuration {
        var configuration = HTTPClient.Configuration(
            redirectConfiguration: .disallow,
            timeout: .init(connect: connectTimeout, read: readTimeout),
            decompression: .disabled)
        configuration.httpVersion = .http1Only
        return configuration
    }

    public func send(
        method: String, path: String, headers: [(String, String)], body: String
    ) async throws -> (status: Int, headers: [(String, String)], body: [UInt8]) {
        var request = HTTPClientRequest(url: upstream.url.description + path)
        request.method = HTTPMethod(rawValue: method)
        request.headers = HTTPHeaders(headers)
        request.body = .bytes(ByteBuffer(string: body))
        request.tlsConfiguration = tls
        do {
            let response = try await client.execute(
                request, timeout: upstream.connectTimeout + upstream.responseTimeout, logger: logger)
            let bytes = try await response.body.collect(upTo: Self.maxAnswerBytes)
            return (Int(response.status.code), response.headers.map { ($0.name, $0.value) }, Array(bytes.readableBytesView))
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw SessionTransportError(Self.describe(error))
        }
    }

    /// A failure in a few words for the status and the log: what went wrong, not the library's internals (which
    /// can hold file paths and error stacks).
    static func describe(_ error: any Error) -> String {
        switch error {
        case let error as HTTPClientError:
            switch error {
            case .connectTimeout: return "connect timed out"
            case .tlsHandshakeTimeout: return "TLS handshake timed out"
            case .deadlineExceeded, .readTimeout: return "no answer in time"
            case .remoteConnectionClosed: return "the connection closed before the answer"
            case .cancelled: return "cancelled"
            default: return "\(error)"
            }
        case is NIOSSLError, is BoringSSLError:
            return "\(error)".contains("CERTIFICATE_VERIFY_FAILED")
                ? "TLS certificate not trusted (see the upstream's ca_file)" : "TLS handshake failed"
        case let error as NIOConnectionError:
            let refused = error.connectionErrors.contains { ($0.error as? IOError)?.errnoCode == ECONNREFUSED }
            if refused { return "connection refused" }
            return error.dnsAError != nil && error.dnsAAAAError != nil && error.connectionErrors.isEmpty
                ? "cannot resolve \(error.host)" : "cannot connect to \(error.host):\(error.port)"
        case let error as IOError where error.errnoCode == ECONNREFUSED:
            return "connection refused"
        case ChannelError.connectTimeout:
            return "connect timed out"
        case is NIOTooManyBytesError:
            return "the answer is larger than \(maxAnswerBytes / 1024) KiB"
        default:
            return "\(type(of: error))"
        }
    }
}

/// No answer from the upstream, with a short reason (``AsyncHTTPSessionTransport/describe(_:)``).
public struct SessionTransportError: Error, Sendable, CustomStringConvertible {
    public let description: String

    public init(_ description: String) { self.description = description }
}
