import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix

/// A small WriftAI for the one-call upload tests, on two loopback ports like the real thing: the API (bearer
/// checked; `POST /v1/uploads`, `POST /v1/uploads/{id}/complete`, `POST /v1/files/urls`) and the storage its
/// presigned URLs point at (another host:port; each `PUT` must carry no `Authorization`, the exact
/// `Content-Length` of its part and the upload's `Content-Type`). It records every request, checks the ETags of
/// `complete` against the parts it stored, and can fail a part's `PUT` a given number of times.
final class FakeWriftAI: Sendable {
    struct Recorded: Sendable {
        var method: HTTPMethod
        var uri: String
        var headers: HTTPHeaders
        var body: [UInt8]
        var path: String { String(uri.split(separator: "?", maxSplits: 1).first ?? "") }
    }

    private struct Upload {
        var size: Int
        var mimeType: String
        var parts: [Int: [UInt8]] = [:]
    }

    private struct State {
        var api: [Recorded] = []
        var storage: [Recorded] = []
        /// Paths of requests whose connection closed before their end.
        var cutOff: [String] = []
        var uploads: [String: Upload] = [:]
        /// Bytes of completed uploads, by id.
        var files: [String: [UInt8]] = [:]
        /// Part index (0-based) → how many more `PUT`s of it fail with 500.
        var failures: [Int: Int] = [:]
        var next = 0
    }

    static let token = "wrift-test-token-8c1d"
    let partSize: Int
    private let state = NIOLockedValueBox(State())
    private let channels = NIOLockedValueBox<[any Channel]>([])

    var apiRequests: [Recorded] { state.withLockedValue { $0.api } }
    var storageRequests: [Recorded] { state.withLockedValue { $0.storage } }
    var cutOffRequests: [String] { state.withLockedValue { $0.cutOff } }
    func file(_ id: String) -> [UInt8]? { state.withLockedValue { $0.files[id] } }
    var apiPort: Int { channels.withLockedValue { $0[0].localAddress!.port! } }
    var storagePort: Int { channels.withLockedValue { $0[1].localAddress!.port! } }
    var apiURL: String { "http://127.0.0.1:\(apiPort)" }

    init(partSize: Int, failures: [Int: Int] = [:]) {
        self.partSize = partSize
        state.withLockedValue { $0.failures = failures }
    }

    static func start(partSize: Int, failures: [Int: Int] = [:]) async throws -> FakeWriftAI {
        let fake = FakeWriftAI(partSize: partSize, failures: failures)
        for role in [true, false] {
            let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: false)
                        try channel.pipeline.syncOperations.addHandler(
                            WholeRequestHandler(
                                { request in
                                    role ? fake.api(request) : fake.storage(request)
                                }, cutOff: { path in fake.state.withLockedValue { $0.cutOff.append(path) } }))
                    }
                }
                .bind(host: "127.0.0.1", port: 0).get()
            fake.channels.withLockedValue { $0.append(channel) }
        }
        return fake
    }

    func shutdown() async throws {
        for channel in channels.withLockedValue({ $0 }) { try await channel.close() }
    }

    typealias Answer = (status: HTTPResponseStatus, headers: HTTPHeaders, body: String)

    private static func json(_ status: HTTPResponseStatus, _ object: [String: Any]) -> Answer {
        let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
        return (status, ["content-type": "application/json"], String(decoding: data, as: UTF8.self))
    }

    private static func object(_ body: [UInt8]) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any] ?? [:]
    }

    // MARK: - API

    private func api(_ request: Recorded) -> Answer {
        state.withLockedValue { $0.api.append(request) }
        guard request.headers.first(name: "authorization") == "Bearer \(Self.token)" else {
            return Self.json(.unauthorized, ["detail": "Invalid token."])
        }
        let path = request.path.split(separator: "/").map(String.init)
        if request.method == .POST, path == ["v1", "uploads"] {
            let body = Self.object(request.body)
            guard let size = body["size"] as? Int, size > 0, let mime = body["mime_type"] as? String else {
                return Self.json(.unprocessableEntity, ["detail": "size and mime_type required"])
            }
            let id = state.withLockedValue { s -> String in
                s.next += 1
                let id = "upl_\(s.next)"
                s.uploads[id] = Upload(size: size, mimeType: mime)
                return id
            }
            let count = (size + partSize - 1) / partSize
            let urls = (0..<count).map {
                "http://127.0.0.1:\(storagePort)/parts/\(id)/\($0)?X-Signature=sig\($0)&X-Expires=3600"
            }
            return Self.json(.created, ["id": id, "urls": urls, "part_size": partSize])
        }
        if request.method == .POST, path.count == 4, path[0] == "v1", path[1] == "uploads", path[3] == "complete" {
            let id = path[2]
            let etags = Self.object(request.body)["etags"] as? [String] ?? []
            return state.withLockedValue { s -> Answer in
                guard let upload = s.uploads[id] else { return Self.json(.notFound, ["detail": "no upload"]) }
                let count = (upload.size + partSize - 1) / partSize
                let parts = (0..<count).map { upload.parts[$0] }
                guard parts.allSatisfy({ $0 != nil }) else { return Self.json(.conflict, ["detail": "parts missing"]) }
                guard etags == parts.map({ Self.etag($0!) }) else {
                    return Self.json(.badRequest, ["detail": "etags do not match"])
                }
                s.files[id] = parts.flatMap { $0! }
                return Self.json(.ok, ["download_url": "http://127.0.0.1:\(storagePort)/files/\(id)?X-Signature=dl"])
            }
        }
        if request.method == .POST, path == ["v1", "files", "urls"] {
            let body = Self.object(request.body)
            guard let size = body["size"] as? Int, let mime = body["mime_type"] as? String, body["name"] is String,
                body["resource"] as? String == "prediction"
            else { return Self.json(.unprocessableEntity, ["detail": "name, size, resource and mime_type required"]) }
            let id = state.withLockedValue { s -> String in
                s.next += 1
                let id = "file_\(s.next)"
                s.uploads[id] = Upload(size: size, mimeType: mime)
                return id
            }
            return Self.json(
                .ok,
                [
                    "upload_url": "http://127.0.0.1:\(storagePort)/one/\(id)?X-Signature=up",
                    "download_url": "http://127.0.0.1:\(storagePort)/files/\(id)?X-Signature=dl",
                ])
        }
        return Self.json(.notFound, ["detail": "Not found."])
    }

    // MARK: - Storage

    static func etag(_ bytes: [UInt8]) -> String {
        "\"" + Insecure.MD5.hash(data: bytes).map { String(format: "%02x", $0) }.joined() + "\""
    }

    private func storage(_ request: Recorded) -> Answer {
        state.withLockedValue { $0.storage.append(request) }
        if request.headers.contains(name: "authorization") {
            return (
                .badRequest, [:],
                "<Error><Code>InvalidArgument</Code><Message>Only one auth mechanism allowed</Message></Error>"
            )
        }
        let path = request.path.split(separator: "/").map(String.init)
        return state.withLockedValue { s -> Answer in
            guard request.method == .PUT else { return (.notFound, [:], "") }
            if path.count == 3, path[0] == "parts" {
                let (id, number) = (path[1], path[2])
                guard var upload = s.uploads[id], let index = Int(number) else { return (.notFound, [:], "") }
                let expected = min(partSize, upload.size - index * partSize)
                guard request.headers.first(name: "content-length") == String(expected), request.body.count == expected,
                    request.headers.first(name: "content-type") == upload.mimeType
                else { return (.forbidden, [:], "<Error><Code>SignatureDoesNotMatch</Code></Error>") }
                if let left = s.failures[index], left > 0 {
                    s.failures[index] = left - 1
                    return (.internalServerError, [:], "<Error><Code>InternalError</Code></Error>")
                }
                upload.parts[index] = request.body
                s.uploads[id] = upload
                return (.ok, ["etag": Self.etag(request.body)], "")
            }
            if path.count == 2, path[0] == "one" {
                let id = path[1]
                guard let upload = s.uploads[id] else { return (.notFound, [:], "") }
                guard request.headers.first(name: "content-length") == String(upload.size),
                    request.body.count == upload.size,
                    request.headers.first(name: "content-type") == upload.mimeType
                else { return (.forbidden, [:], "<Error><Code>SignatureDoesNotMatch</Code></Error>") }
                s.files[id] = request.body
                return (.ok, ["etag": Self.etag(request.body)], "")
            }
            return (.notFound, [:], "")
        }
    }

    /// Collects a whole request, then answers it with what `respond` says.
    final class WholeRequestHandler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let respond: @Sendable (Recorded) -> Answer
        var head: HTTPRequestHead?
        var body: [UInt8] = []

        /// Told the path of a request whose connection closed before its end arrived (a cut-off part).
        let cutOff: @Sendable (String) -> Void

        init(
            _ respond: @escaping @Sendable (Recorded) -> Answer, cutOff: @escaping @Sendable (String) -> Void = { _ in }
        ) {
            self.respond = respond
            self.cutOff = cutOff
        }

        func channelInactive(context: ChannelHandlerContext) {
            if let head { cutOff(String(head.uri.split(separator: "?", maxSplits: 1).first ?? "")) }
            context.fireChannelInactive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let h):
                head = h
                body = []
            case .body(let buffer):
                body += buffer.readableBytesView
            case .end:
                guard let head else { return }
                let answer = respond(Recorded(method: head.method, uri: head.uri, headers: head.headers, body: body))
                var headers = answer.headers
                headers.replaceOrAdd(name: "content-length", value: String(answer.body.utf8.count))
                context.write(
                    wrapOutboundOut(
                        .head(HTTPResponseHead(version: .http1_1, status: answer.status, headers: headers))),
                    promise: nil)
                if !answer.body.isEmpty {
                    context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: answer.body)))), promise: nil)
                }
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
                self.head = nil
                body = []
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }
}
