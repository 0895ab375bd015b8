import NIOConcurrencyHelpers
import NIOCore

/// The open client connections, so that a drain can tell each one to finish its current exchange and close.
///
/// A connection registers once its handlers are in place and leaves when it closes. One that registers after the
/// drain began (accepted just before the listener closed) is told at once.
final class ClientConnections: Sendable {
    /// Sent (as an inbound user event) to every client connection when the gateway drains: ``ProxyHandler``
    /// closes it at once if idle, else after the current answer, which says `Connection: close`.
    struct FinishAndClose: Sendable {}

    private struct State {
        var open: [ObjectIdentifier: any Channel] = [:]
        var draining = false
    }

    private let state = NIOLockedValueBox(State())

    var count: Int { state.withLockedValue { $0.open.count } }

    /// Call from the channel's initializer, after its handlers are added.
    func register(_ channel: any Channel) {
        let id = ObjectIdentifier(channel)
        let draining = state.withLockedValue { s -> Bool in
            s.open[id] = channel
            return s.draining
        }
        channel.closeFuture.whenComplete { [self] _ in
            _ = state.withLockedValue { $0.open.removeValue(forKey: id) }
        }
        if draining { channel.pipeline.fireUserInboundEventTriggered(FinishAndClose()) }
    }

    /// Tells every open connection, and every one that registers from now on, to finish and close.
    func drain() {
        let channels = state.withLockedValue { s -> [any Channel] in
            s.draining = true
            return Array(s.open.values)
        }
        for channel in channels { channel.pipeline.fireUserInboundEventTriggered(FinishAndClose()) }
    }

    /// Closes whatever is still open (the grace period is over).
    func closeAll() {
        for channel in state.withLockedValue({ Array($0.open.values) }) { channel.close(promise: nil) }
    }
}
