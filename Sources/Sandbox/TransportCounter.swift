import Hummingbird
import HummingbirdCore
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// Bytes the sandbox's server sockets have received and connections they have accepted, counted below HTTP.
///
/// Tests of a gateway read it before and after a request the gateway must refuse, to show the platform received
/// nothing at all: not a request line, not a header, not a byte of body, and no connection either. Counting after
/// the HTTP decoder would miss a request that was cut off or unparsable, so the count is taken on the raw bytes.
final class TransportCounter: Sendable {
    private struct Totals {
        var bytes = 0
        var connections = 0
    }

    private let totals = NIOLockedValueBox(Totals())

    func received(_ count: Int) {
        totals.withLockedValue { $0.bytes += count }
    }

    func accepted() {
        totals.withLockedValue { $0.connections += 1 }
    }

    /// Both numbers, read together.
    var snapshot: (bytesReceived: Int, connections: Int) {
        totals.withLockedValue { ($0.bytes, $0.connections) }
    }

    func reset() {
        totals.withLockedValue { $0 = Totals() }
    }
}

/// First handler of every accepted connection: adds the size of each inbound buffer to a ``TransportCounter`` and
/// passes the buffer on untouched.
final class ByteCountingHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let counter: TransportCounter

    init(counter: TransportCounter) {
        self.counter = counter
    }

    /// One handler per connection, added as the connection is set up: counting here counts accepted connections.
    func handlerAdded(context: ChannelHandlerContext) {
        counter.accepted()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        counter.received(unwrapInboundIn(data).readableBytes)
        context.fireChannelRead(data)
    }
}

/// Hummingbird's HTTP/1 child channel with a ``ByteCountingHandler`` in front of it.
///
/// `HTTP1Channel.Configuration.additionalChannelHandlers` cannot do this: those handlers are added after the HTTP
/// decoder and see decoded request parts, not bytes. So this wraps the channel and puts the counter first in the
/// pipeline before Hummingbird adds its own handlers.
struct ByteCountingHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value

    let base: HTTP1Channel
    let counter: TransportCounter

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        // Hummingbird calls this on the channel's event loop, as the synchronous pipeline operations require.
        do {
            try channel.pipeline.syncOperations.addHandler(ByteCountingHandler(counter: counter), position: .first)
        } catch {
            return channel.eventLoop.makeFailedFuture(error)
        }
        return base.setup(channel: channel, logger: logger)
    }

    func handle(value: Value, logger: Logger) async {
        await base.handle(value: value, logger: logger)
    }
}

extension HTTPServerBuilder {
    /// HTTP/1 as Hummingbird's `.http1()` serves it, with every received byte counted into `counter`.
    static func countingHTTP1(_ counter: TransportCounter) -> HTTPServerBuilder {
        HTTPServerBuilder { responder in
            ByteCountingHTTP1Channel(base: HTTP1Channel(responder: responder), counter: counter)
        }
    }
}
