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
    static let maxAnswerBytes = 1 << 20

    let upstream: UpstreamConfig
    private let client: HTTPClient
    private let tls: TLSConfiguration?
    private let logger: Logger?

    /// `client` should be configured with ``makeClientConfiguration(connectTimeout:readTimeout:)``; its owner
    /// shuts it down after every session using it has shut down. `logger` is handed to AsyncHTTPClient no more
    /// verbose than `debug` (``clientLogger(_:)``).
    public init(upstream: UpstreamConfig, client: HTTPClient, logger: Logger? = nil) {
        self.upstream = upstream
        self.client = client
        self.logger = Self.clientLogger(logger)
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

    /// The logger AsyncHTTPClient gets: the gateway's, at `debug` when the gateway's is at `trace`. At `trace` the
    /// client logs every response part it reads, body bytes included (hex-dumped): a login or refresh answer holds
    /// the access and refresh tokens, and a platform may echo the password. Its `debug` lines name connections and
    /// connection errors only. (A log handler treats its level as a value, so the gateway's own logger keeps its.)
    static func clientLogger(_ logger: Logger?) -> Logger? {
        guard var logger else { return nil }
        if logger.logLevel < .debug { logger.logLevel = .debug }
        return logger
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
            return (
                Int(response.status.code), response.headers.map { ($0.name, $0.value) }, Array(bytes.readableBytesView)
            )
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw SessionTransportError(Self.describe(error))
        }
    }

    /// A failure in a few words for the status, the log and problem bodies: what went wrong, in a fixed sentence
    /// per known error, else only the error's type name. Never the error's own text, which can hold file paths,
    /// header values (`HTTPClientError.invalidHeaderFieldValues`) or bytes of an answer.
    static func describe(_ error: any Error) -> String {
        switch error {
        case let error as HTTPClientError:
            switch error {
            case .connectTimeout: return "connect timed out"
            case .tlsHandshakeTimeout: return "TLS handshake timed out"
            case .deadlineExceeded, .readTimeout: return "no answer in time"
            case .writeTimeout: return "the request could not be sent in time"
            case .remoteConnectionClosed: return "the connection closed before the answer"
            case .cancelled, .requestStreamCancelled: return "cancelled"
            case .getConnectionFromPoolTimeout: return "no connection to the upstream in time"
            case .alreadyShutdown: return "the gateway's HTTP client is shut down"
            case .bodyLengthMismatch: return "a body's length does not match its Content-Length"
            case .invalidURL, .emptyHost, .emptyScheme: return "the upstream URL is not valid"
            default:
                // Cases with a value (the offending header names or values) are told apart by their short
                // description, which never carries the value.
                switch error.shortDescription {
                case HTTPClientError.invalidHeaderFieldValues([]).shortDescription:
                    return "a header value of the call is not valid in HTTP"
                case HTTPClientError.invalidHeaderFieldNames([]).shortDescription:
                    return "a header name of the call is not valid in HTTP"
                default:
                    return "\(type(of: error))"
                }
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
        case let error as IOError where error.errnoCode == ECONNRESET:
            return "the connection was reset"
        case ChannelError.connectTimeout:
            return "connect timed out"
        case ChannelError.ioOnClosedChannel, ChannelError.eof:
            return "the connection closed before the answer"
        case is HTTPParserError:
            return "the answer is not valid HTTP"
        case is NIOTooManyBytesError:
            return "the answer is larger than \(maxAnswerBytes / 1024) KiB"
        default:
            return "\(type(of: error))"
        }
    }
}

/// No answer from the upstream, with a short reason (``AsyncHTTPSessionTransport/describe(_:)``).
struct SessionTransportError: Error, Sendable, CustomStringConvertible {
    let description: String

    init(_ description: String) { self.description = description }
}
