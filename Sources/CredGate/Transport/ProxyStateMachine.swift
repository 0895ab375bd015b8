import NIOCore
import NIOHTTP1

/// The decisions of one client connection, with no I/O: which request is being answered, what happens to the
/// parts the client sends, when the connection pauses reading, answers, lingers or closes. ``ProxyHandler`` feeds
/// it events and runs the ``Action`` each returns; a test drives it with no channel at all.
///
/// `Payload` is what the handler keeps for the request in flight (its ``Exchange``); the machine only hands it
/// back in the actions that need it, so the handler never holds a second copy of "the current request".
///
/// What the upstream side of a request is doing (filters, a body stage, connecting, forwarding) stays with the
/// exchange; the machine knows only the facts that decide the connection: whether the request and the answer are
/// complete, whether the rest of the body is dropped, and what holds client reads back.
struct ProxyStateMachine<Payload: AnyObject> {
    enum State {
        /// Between requests.
        /// - a head → ``Action/startRequest(_:)`` (state unchanged until the handler reports
        ///   ``ProxyStateMachine/requestStarted(_:keepAlive:hasBody:)`` → `.active`, or
        ///   ``ProxyStateMachine/answeredBeforeRouting(keepAlive:hasBody:)`` → `.discarding`);
        /// - the client half-closes, the gateway drains, or (nothing queued) the keep-alive timer fires → `.closed`;
        /// - a head is too slow (408) or malformed (400) → `.closed`.
        case idle
        /// A request is being answered.
        /// - its answer is complete and the request too → `.idle`, or `.closed` when it must close;
        /// - its answer is complete before the request → `.discarding(close: true)` (the rest is dropped);
        /// - the gateway answers it itself → `.idle`/`.closed` (request complete) or `.discarding`;
        /// - the client goes, the answer breaks mid-way, or a malformed part arrives → `.closed`.
        case active(Request)
        /// The current request was answered; the rest of its body is read and dropped.
        /// - its end → `.idle`, or `.closed` when `close`;
        /// - the linger timer, a half-close, a slow head (the next one) or a malformed part → `.closed`;
        /// - the gateway drains → `.discarding(close: true)`.
        case discarding(close: Bool)
        /// Nothing more is read or answered; every event but the client going away is ignored.
        case closed
    }

    /// What the machine knows of the request in flight.
    struct Request {
        let payload: Payload
        /// The client asked to keep the connection open after this request.
        let keepAlive: Bool
        /// The request declared a body (`Content-Length` above zero or `Transfer-Encoding`).
        let hasBody: Bool
        var body: Body = .receiving
        var response: Response = .awaitingHead
        /// The connection closes once this answer is out (the gateway is draining, the client or the framing
        /// asks for it, or the rest of the body was dropped).
        var closeAfter: Bool
        /// The exchange waits on asynchronous work (a filter's future, a new upstream connection): the client is
        /// not read meanwhile.
        var parked = false
        /// Writes of a staged body not yet done (the client is not read meanwhile).
        var spoolWrites = 0
        var upstream: UpstreamLink = .none
    }

    /// How far the client's request has come.
    enum Body: Equatable {
        case receiving
        /// The answer came before the request was over: the rest of the body is read and dropped.
        case dropping
        /// The request's end arrived (after part of it was dropped, when `dropped`).
        case complete(dropped: Bool)

        var isComplete: Bool { if case .complete = self { true } else { false } }
        var isDropped: Bool { self == .dropping || self == .complete(dropped: true) }
    }

    /// How far the answer has come.
    enum Response: Equatable {
        case awaitingHead
        /// A filter wants the whole answer before the client gets any of it.
        case buffering
        case streaming
        case complete
    }

    /// Whether an upstream connection is attached to the request, and whether it takes more bytes.
    enum UpstreamLink: Equatable {
        case none
        case writable
        /// Its outbound buffer is full: the client is not read until it drains (backpressure, request direction).
        case blocked
    }

    /// Why the connection closes once nothing is left to answer.
    struct Ending: OptionSet {
        let rawValue: UInt8
        /// The client half-closed: it sent its last request.
        static var halfClosed: Ending { Ending(rawValue: 1) }
        /// The gateway drains (``ClientConnections/FinishAndClose``).
        static var draining: Ending { Ending(rawValue: 2) }
    }

    /// What the handler does next.
    enum Action {
        case none
        case pauseReading
        case resumeReading
        /// Check and route this head, then report ``ProxyStateMachine/requestStarted(_:keepAlive:hasBody:)`` or
        /// ``ProxyStateMachine/answeredBeforeRouting(keepAlive:hasBody:)``.
        case startRequest(HTTPRequestHead)
        /// A chunk of the current request's body: pass it along the exchange, or (`forward` false) only count it.
        case requestBody(Payload, ByteBuffer, forward: Bool)
        /// The current request's end: pass it along the exchange.
        case requestEnd(Payload)
        /// The exchange is over: write the answer's end, then close the connection (`close`) or go idle.
        case finishExchange(Payload, close: Bool)
        /// The answer is out before the request: write its end and linger, dropping the rest of the body.
        case endEarlyAnswer(Payload)
        /// Write a locally made answer. `close`: it says `Connection: close`, and the connection closes once it is
        /// written (unless the rest of the body is still being dropped); `linger`: start the linger timer; `idle`:
        /// the connection is idle once it is written.
        case writeLocal(close: Bool, linger: Bool, idle: Bool)
        /// The body being dropped ended: cancel the linger timer and close (`close`) or go idle.
        case stopDiscarding(close: Bool)
        /// Answer 400 (malformed request) and close, cutting off this exchange's upstream first if there is one.
        case answerMalformed(abandoning: Payload?)
        /// Answer 408 (a head sent too slowly) and close.
        case answerHeaderTimeout
        /// The client is gone: cut off this exchange if there is one, cancel the linger timer.
        case clientGone(abandoning: Payload?)
        /// The answer started before the request was over: drop what still waits to go upstream.
        case stopSendingBody
        /// The answer is complete: give its upstream connection back to the pool, or (`reuse` false) close it.
        case releaseUpstream(reuse: Bool)
        /// Cancel the linger timer and close.
        case cancelLingerAndClose
        case close
    }

    private(set) var state: State = .idle
    private(set) var queue = PipelineQueue()
    private(set) var ending: Ending = []
    /// Whether client reads are paused now (the last reading action the handler ran).
    private(set) var readPaused = false

    init() {}

    // MARK: - Queries

    /// The exchange of the request in flight.
    var current: Payload? {
        if case .active(let request) = state { return request.payload }
        return nil
    }

    /// The request in flight, if any.
    var request: Request? {
        if case .active(let request) = state { return request }
        return nil
    }

    /// The client's request is fully read.
    var requestComplete: Bool { request?.body.isComplete ?? false }

    /// The rest of the current request body is dropped.
    var bodyDropped: Bool { request?.body.isDropped ?? false }

    /// No answer has reached the client yet, so the gateway may still answer with an error of its own.
    var canStillAnswer: Bool {
        guard let request else { return false }
        return request.response == .awaitingHead || request.response == .buffering
    }

    /// The upstream has not answered yet.
    var awaitingResponseHead: Bool { request?.response == .awaitingHead }

    /// Writes of the current request's staged body not yet done.
    var spoolWrites: Int { request?.spoolWrites ?? 0 }

    /// The current request must close the connection after its answer.
    var closeAfter: Bool { request?.closeAfter ?? false }

    // MARK: - Client events

    /// A part of a request arrived. A pipelined request waits (queued) until the one before it is answered, and
    /// so does everything after it.
    mutating func clientRead(_ part: HTTPServerRequestPart) -> Action {
        if !queue.isEmpty {
            queue.append(part)
            return .none
        }
        if case .head = part {
            switch state {
            case .active, .discarding:
                queue.append(part)
                return updateReading()
            case .idle, .closed:
                break
            }
        }
        return dispatch(part)
    }

    private mutating func dispatch(_ part: HTTPServerRequestPart) -> Action {
        switch part {
        case .head(let head):
            // Only `.closed` is left: a head that arrives while a request is in flight is queued.
            guard case .idle = state else { return .close }
            return .startRequest(head)
        case .body(let buffer):
            guard case .active(let request) = state else { return .none }
            return .requestBody(request.payload, buffer, forward: !request.body.isDropped)
        case .end:
            switch state {
            case .active(var request):
                let dropped = request.body.isDropped
                request.body = .complete(dropped: dropped)
                state = .active(request)
                if dropped {
                    return request.response == .complete ? finishExchange() : .none
                }
                return .requestEnd(request.payload)
            case .discarding(let close):
                state = close ? .closed : .idle
                return .stopDiscarding(close: close)
            case .idle, .closed:
                return .none
            }
        }
    }

    /// The connection went idle: the next queued part to run now, or nil when the queue must wait (a head while
    /// a request is in flight), is empty, or was dropped because the connection closed. Call between
    /// ``beginDrain()`` and ``endDrain()``.
    mutating func nextQueued() -> Action? {
        guard let part = queue.first else { return nil }
        switch state {
        case .closed:
            queue.removeAll()
            return nil
        case .active, .discarding:
            if case .head = part { return nil }
        case .idle:
            break
        }
        return dispatch(queue.removeFirst())
    }

    /// Starts running queued parts; false when a drain is already running (it runs them) or none wait.
    mutating func beginDrain() -> Bool { queue.beginDrain() }

    /// The drain ended: the reading it leaves.
    mutating func endDrain() -> Action {
        queue.endDrain()
        if case .closed = state { return .none }
        return updateReading()
    }

    /// The connection is idle and the queue ran as far as it could: close if the client half-closed or the
    /// gateway drains and nothing is left to answer.
    mutating func settledIdle() -> Action {
        guard !ending.isEmpty, case .idle = state, queue.isEmpty else { return .none }
        state = .closed
        return .close
    }

    /// The handler routed the head of ``Action/startRequest(_:)`` to an exchange.
    mutating func requestStarted(_ payload: Payload, keepAlive: Bool, hasBody: Bool) -> Action {
        guard case .idle = state else { return .close } // cannot happen: heads start only when idle
        state = .active(
            Request(
                payload: payload, keepAlive: keepAlive, hasBody: hasBody,
                closeAfter: ending.contains(.draining)))
        return .none
    }

    /// The handler answered the head of ``Action/startRequest(_:)`` itself (a bad head, no route): the body that
    /// may follow is dropped, and a body or a client that did not ask to keep the connection closes it.
    mutating func answeredBeforeRouting(keepAlive: Bool, hasBody: Bool) -> Action {
        guard case .idle = state else { return .close } // cannot happen: heads start only when idle
        let close = hasBody || !keepAlive
        state = .discarding(close: close)
        return .writeLocal(close: close, linger: hasBody, idle: false)
    }

    /// The client half-closed its side: answer what it sent, then close.
    mutating func inputClosed() -> Action {
        ending.insert(.halfClosed)
        switch state {
        case .idle where queue.isEmpty:
            state = .closed
            return .close
        case .discarding:
            // The rest of the body will never come: the answer already sent is all.
            state = .closed
            return .cancelLingerAndClose
        case .idle, .active, .closed:
            return .none // answered (and closed) once the current and queued requests are done
        }
    }

    /// The gateway drains: the current answer is the last on this connection.
    mutating func finishAndClose() -> Action {
        ending.insert(.draining)
        switch state {
        case .idle where queue.isEmpty:
            state = .closed
            return .close
        case .active(var request):
            request.closeAfter = true
            state = .active(request)
            return .none
        case .discarding:
            state = .discarding(close: true)
            return .none
        case .idle, .closed:
            return .none // a queued request runs next and closes after its answer; or already closed
        }
    }

    /// The keep-alive timer fired: close only a connection with nothing in flight.
    mutating func keepAliveTimedOut() -> Action {
        if case .idle = state, queue.isEmpty { return .close }
        return .none
    }

    /// A head is being sent too slowly (or a pipelined one never completes).
    mutating func headerTimedOut() -> Action {
        switch state {
        case .idle:
            state = .closed
            queue.removeAll()
            return .answerHeaderTimeout
        case .discarding:
            state = .closed
            return .close
        case .active, .closed:
            return .none
        }
    }

    /// The HTTP decoder found the stream malformed: answer 400 if no answer has started, and close.
    mutating func parseError() -> Action {
        switch state {
        case .idle, .discarding:
            state = .closed
            queue.removeAll()
            return .answerMalformed(abandoning: nil)
        case .active(let request) where request.response == .awaitingHead || request.response == .buffering:
            state = .closed
            queue.removeAll()
            return .answerMalformed(abandoning: request.payload)
        case .active, .closed:
            state = .closed
            return .close
        }
    }

    /// The linger timer fired: stop waiting for the rest of a dropped body.
    mutating func lingerExpired() -> Action {
        guard case .discarding = state else { return .none }
        state = .closed
        return .close
    }

    /// A locally made answer that closes the connection was written.
    func localAnswerFlushed() -> Action {
        // Still dropping the request body: the linger timer or the body's end closes it.
        if case .discarding = state { return .none }
        return .close
    }

    /// The client connection is gone.
    mutating func clientInactive() -> Action {
        let payload = current
        queue.removeAll()
        state = .closed
        return .clientGone(abandoning: payload)
    }

    // MARK: - Exchange events

    /// The exchange waits on asynchronous work (`true`) or resumes (`false`).
    mutating func parked(_ parked: Bool) -> Action {
        modifyRequest { $0.parked = parked }
        return updateReading()
    }

    /// A write of a staged body started.
    mutating func spoolWriteStarted() -> Action {
        modifyRequest { $0.spoolWrites += 1 }
        return updateReading()
    }

    /// A write of a staged body is done.
    mutating func spoolWriteFinished() -> Action {
        modifyRequest { $0.spoolWrites -= 1 }
        return updateReading()
    }

    /// An upstream connection is attached to the request.
    mutating func upstreamAttached(writable: Bool) -> Action {
        modifyRequest { $0.upstream = writable ? .writable : .blocked }
        return .none
    }

    /// The request's upstream connection is gone (answered, failed or abandoned).
    mutating func upstreamDetached() -> Action {
        modifyRequest { $0.upstream = .none }
        return .none
    }

    /// The upstream connection can take more bytes, or cannot.
    mutating func upstreamWritabilityChanged(_ writable: Bool) -> Action {
        modifyRequest { request in
            if request.upstream != .none { request.upstream = writable ? .writable : .blocked }
        }
        return updateReading()
    }

    /// The upstream's answer head arrived (not an informational one). `closeRequired`: its framing leaves the
    /// client no other way to find its end than the connection closing.
    mutating func responseHeadArrived(closeRequired: Bool) -> Action {
        guard case .active(var request) = state else { return .none }
        var action = Action.none
        request.response = .streaming
        if !request.body.isComplete {
            // The upstream answered before the request was over (an early 401 or 413): stop sending, drop the rest
            // of the client's body, and close once the answer is through.
            request.body = .dropping
            request.closeAfter = true
            action = .stopSendingBody
        }
        if !request.keepAlive || closeRequired { request.closeAfter = true }
        state = .active(request)
        return action
    }

    /// A filter holds the answer until it is whole.
    mutating func responseBuffering() -> Action {
        modifyRequest { $0.response = .buffering }
        return .none
    }

    /// The held answer outgrew what the filters asked to see: it streams to the client as it comes.
    mutating func responseStreaming() -> Action {
        modifyRequest { $0.response = .streaming }
        return .none
    }

    /// The upstream's answer ended. `reusable`: the whole request went upstream and the upstream keeps the
    /// connection open.
    mutating func responseEnded(reusable: Bool) -> Action {
        guard case .active(var request) = state else { return .none }
        request.response = .complete
        let attached = request.upstream != .none
        request.upstream = .none
        state = .active(request)
        guard attached else { return .none }
        return .releaseUpstream(reuse: reusable && !request.body.isDropped)
    }

    /// The request is sent again (a filter asked for one replay): its answer starts over.
    mutating func responseRestarted() -> Action {
        modifyRequest {
            $0.response = .awaitingHead
            $0.upstream = .none
        }
        return .none
    }

    /// The answer's last byte went to the client (all but its end).
    mutating func responseWritten() -> Action {
        guard case .active(let request) = state else { return .none }
        if request.body.isComplete { return finishExchange() }
        // The client is still sending: the answer ends, the rest of its body is dropped.
        state = .discarding(close: true)
        return .endEarlyAnswer(request.payload)
    }

    /// The gateway answers the request in flight itself (an error or a filter's answer). `close`: the answer
    /// itself requires the connection to close.
    mutating func answeredLocally(close: Bool) -> Action {
        guard case .active(let request) = state else { return .none } // cannot happen: only exchanges answer
        // A body still on its way is dropped, and the connection closed after it: the client may not expect an
        // answer before it has sent everything.
        let complete = request.body.isComplete
        let bodyStillComing = !complete && request.hasBody
        let mustClose = close || !request.keepAlive || bodyStillComing || request.closeAfter
        if complete {
            state = mustClose ? .closed : .idle
        } else {
            state = .discarding(close: mustClose)
        }
        var idle = false
        if case .idle = state { idle = true }
        return .writeLocal(close: mustClose, linger: bodyStillComing, idle: idle)
    }

    /// The answer broke after it started (the upstream closed or went idle mid-way, the body passed its limit
    /// while the answer streamed): the client can only learn of it by the connection closing.
    mutating func failedMidResponse() -> Action {
        guard case .active = state else { return .none }
        state = .closed
        return .close
    }

    // MARK: - Reading

    /// Pauses or resumes client reads to match the state: paused while a pipelined request waits, while the
    /// exchange waits on asynchronous work or a staged body's writes, and while the upstream cannot take more
    /// of the body.
    mutating func updateReading() -> Action {
        var pause = !queue.isEmpty
        if case .active(let request) = state {
            pause =
                pause || request.parked || request.spoolWrites > 0
                || (request.upstream == .blocked && !request.body.isDropped)
        }
        guard pause != readPaused else { return .none }
        readPaused = pause
        return pause ? .pauseReading : .resumeReading
    }

    // MARK: - Helpers

    private mutating func finishExchange() -> Action {
        guard case .active(let request) = state else { return .none }
        state = request.closeAfter ? .closed : .idle
        return .finishExchange(request.payload, close: request.closeAfter)
    }

    private mutating func modifyRequest(_ change: (inout Request) -> Void) {
        guard case .active(var request) = state else { return }
        change(&request)
        state = .active(request)
    }
}

extension ProxyStateMachine.Action: Equatable where Payload: Equatable {}
