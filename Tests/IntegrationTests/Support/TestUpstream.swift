import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A scripted upstream for behaviours the sandbox does not have: slow, early answers, closing connections,
/// hop-by-hop headers in answers, TLS.
final class TestUpstream: Sendable {
    struct Request: Sendable {
        var head: HTTPRequestHead
        /// Index of this request on its connection (0 for the first).
        var indexOnConnection: Int
        var connection: Int
    }

    enum Reaction: Sendable {
        /// Read the whole body, then answer.
        case respond(HTTPResponseStatus, headers: HTTPHeaders = [:], body: String = "", close: Bool = false)
        /// Answer at once, before reading the body; optionally close right after.
        case respondEarly(HTTPResponseStatus, body: String, close: Bool)
        /// Close the connection without answering.
        case closeNow
        /// Read everything, never answer.
        case silent
        /// Read the body, then write these bytes verbatim.
        case raw(String)
        /// These bytes as the answer, then the connection closed (an answer framed by the close).
        case rawThenClose(String)
        /// Read at least this many bytes of the body (at least one), then close without answering: a server that
        /// drops a reused connection while a body is arriving.
        case closeAfterBodyBytes(Int)
    }

    let channel: any Channel
    private let state: NIOLockedValueBox<(connections: Int, requests: Int, bodyBytes: Int)>
    var port: Int { channel.localAddress!.port! }
    var connections: Int { state.withLockedValue { $0.connections } }
    var requests: Int { state.withLockedValue { $0.requests } }
    var bodyBytes: Int { state.withLockedValue { $0.bodyBytes } }

    private init(channel: any Channel, state: NIOLockedValueBox<(connections: Int, requests: Int, bodyBytes: Int)>) {
        self.channel = channel
        self.state = state
    }

    static func start(tls: NIOSSLContext? = nil, react: @escaping @Sendable (Request) -> Reaction) async throws
        -> TestUpstream
    {
        let state = NIOLockedValueBox((connections: 0, requests: 0, bodyBytes: 0))
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                let connection = state.withLockedValue { s -> Int in
                    s.connections += 1
                    return s.connections
                }
                return channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let tls { try sync.addHandler(NIOSSLServerHandler(context: tls)) }
                    try sync.configureHTTPServerPipeline(withPipeliningAssistance: false, withErrorHandling: false)
                    try sync.addHandler(ScriptedHandler(connection: connection, state: state, react: react))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return TestUpstream(channel: channel, state: state)
    }

    func shutdown() async throws { try await channel.close() }

    final class ScriptedHandler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart
        let connection: Int
        let state: NIOLockedValueBox<(connections: Int, requests: Int, bodyBytes: Int)>
        let react: @Sendable (Request) -> Reaction
        var index = 0
        var pending: Reaction?
        var answered = false
        var bodyBytesOfRequest = 0

        init(
            connection: Int, state: NIOLockedValueBox<(connections: Int, requests: Int, bodyBytes: Int)>,
            react: @escaping @Sendable (Request) -> Reaction
        ) {
            self.connection = connection
            self.state = state
            self.react = react
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                state.withLockedValue { $0.requests += 1 }
                let reaction = react(Request(head: head, indexOnConnection: index, connection: connection))
                index += 1
                answered = false
                bodyBytesOfRequest = 0
                switch reaction {
                case .respondEarly(let status, let body, let close):
                    answered = true
                    write(context, status, ["content-type": "application/json"], body, close: close)
                case .closeNow:
                    context.close(promise: nil)
                default:
                    pending = reaction
                }
            case .body(let buffer):
                state.withLockedValue { $0.bodyBytes += buffer.readableBytes }
                bodyBytesOfRequest += buffer.readableBytes
                if case .closeAfterBodyBytes(let bytes) = pending, bodyBytesOfRequest >= max(1, bytes) {
                    pending = nil
                    context.close(promise: nil)
                }
            case .end:
                guard !answered, let reaction = pending else { return }
                pending = nil
                switch reaction {
                case .respond(let status, let headers, let body, let close):
                    write(context, status, headers, body, close: close)
                case .raw(let bytes):
                    // Bypass the HTTP encoder: write from its position towards the socket.
                    if let encoder = try? context.pipeline.syncOperations.context(handlerType: HTTPResponseEncoder.self)
                    {
                        encoder.writeAndFlush(NIOAny(ByteBuffer(string: bytes)), promise: nil)
                    }
                case .rawThenClose(let bytes):
                    if let encoder = try? context.pipeline.syncOperations.context(handlerType: HTTPResponseEncoder.self)
                    {
                        let channel = context.channel
                        encoder.writeAndFlush(NIOAny(ByteBuffer(string: bytes))).whenComplete { _ in
                            channel.close(promise: nil)
                        }
                    }
                default:
                    break
                }
            }
        }

        private func write(
            _ context: ChannelHandlerContext, _ status: HTTPResponseStatus, _ headers: HTTPHeaders, _ body: String,
            close: Bool
        ) {
            var h = headers
            h.replaceOrAdd(name: "content-length", value: String(body.utf8.count))
            if close { h.replaceOrAdd(name: "connection", value: "close") }
            context.write(
                wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: status, headers: h))), promise: nil)
            if !body.isEmpty {
                context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
            }
            let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
            if close {
                let channel = context.channel
                done.whenComplete { _ in channel.close(promise: nil) }
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}
