import NIOConcurrencyHelpers
import NIOCore

/// A finished ``BodySpool`` read from its first byte as an async sequence of plaintext chunks, with backpressure:
/// the spool reads (and decrypts) the next chunk only once the consumer asks for it, so memory holds one chunk
/// whatever the body's size. One reading per instance; make another to read the spool again (a retried `PUT`).
///
/// The spool is confined to its event loop; this bridges its future-per-chunk reading (``BodySpool/read(chunkSize:_:)``)
/// to `async` code such as AsyncHTTPClient's streamed request bodies.
final class SpoolChunks: AsyncSequence, Sendable {
    typealias Element = ByteBuffer

    struct Stopped: Error {}

    private struct State {
        var started = false
        var stopped = false
        /// The consumer waiting for the next chunk.
        var waiter: CheckedContinuation<ByteBuffer?, any Error>?
        /// A chunk read before the consumer asked for it.
        var ready: ByteBuffer?
        /// Completed to let the spool read the chunk after the one delivered.
        var gate: EventLoopPromise<Void>?
        var ended: Result<Void, any Error>?
    }

    private let state = NIOLockedValueBox(State())
    /// The spool, touched only on its event loop (inside `eventLoop.execute`).
    private struct Confined: @unchecked Sendable { let spool: BodySpool }
    private let confined: Confined
    private let eventLoop: any EventLoop
    private let chunkSize: Int

    /// `eventLoop` is the spool's; the reading starts there at the first ``next()``.
    init(_ spool: BodySpool, eventLoop: any EventLoop, chunkSize: Int = 256 * 1024) {
        self.confined = Confined(spool: spool)
        self.eventLoop = eventLoop
        self.chunkSize = chunkSize
    }

    deinit {
        // A reading left half way must not leave the spool waiting (nor a promise never completed).
        state.withLockedValue { $0.gate }?.fail(Stopped())
    }

    struct AsyncIterator: AsyncIteratorProtocol {
        let source: SpoolChunks
        func next() async throws -> ByteBuffer? { try await source.next() }
    }

    func makeAsyncIterator() -> AsyncIterator { AsyncIterator(source: self) }

    /// The next chunk, `nil` at the end; throws the spool's error (or ``Stopped`` after ``stop()``).
    func next() async throws -> ByteBuffer? {
        let (release, start) = state.withLockedValue { s -> (EventLoopPromise<Void>?, Bool) in
            let gate = s.gate
            s.gate = nil
            defer { s.started = true }
            return (gate, !s.started)
        }
        release?.succeed()
        if start { startReading() }
        return try await withCheckedThrowingContinuation { continuation in
            let now = state.withLockedValue { s -> Result<ByteBuffer?, any Error>? in
                if let chunk = s.ready {
                    s.ready = nil
                    return .success(chunk)
                }
                if let ended = s.ended { return ended.map { nil } }
                s.waiter = continuation
                return nil
            }
            if let now { continuation.resume(with: now) }
        }
    }

    /// Stops the reading: the spool reads no further chunk and the next ``next()`` throws.
    func stop() {
        let (gate, waiter) = state.withLockedValue { s -> (EventLoopPromise<Void>?, CheckedContinuation<ByteBuffer?, any Error>?) in
            s.stopped = true
            if s.ended == nil { s.ended = .failure(Stopped()) }
            defer { s.gate = nil; s.waiter = nil }
            return (s.gate, s.waiter)
        }
        gate?.fail(Stopped())
        waiter?.resume(throwing: Stopped())
    }

    private func startReading() {
        let loop = eventLoop
        let chunkSize = chunkSize
        loop.execute { [self] in
            confined.spool.read(chunkSize: chunkSize) { [self] chunk in
                let gate = loop.makePromise(of: Void.self)
                let delivery = state.withLockedValue { s -> (stopped: Bool, waiter: CheckedContinuation<ByteBuffer?, any Error>?) in
                    if s.stopped { return (true, nil) }
                    s.gate = gate
                    if let waiter = s.waiter {
                        s.waiter = nil
                        return (false, waiter)
                    }
                    s.ready = chunk
                    return (false, nil)
                }
                if delivery.stopped {
                    gate.fail(Stopped())
                    return gate.futureResult
                }
                delivery.waiter?.resume(returning: chunk)
                return gate.futureResult
            }.whenComplete { [self] result in
                let waiter = state.withLockedValue { s -> CheckedContinuation<ByteBuffer?, any Error>? in
                    if s.ended == nil { s.ended = result }
                    defer { s.waiter = nil }
                    return s.waiter
                }
                waiter?.resume(with: result.map { nil })
            }
        }
    }
}
