import NIOCore
import NIOHTTP1
import Testing

@testable import CredGate

/// Stands for an exchange: the machine only hands it back, so identity is all a test needs.
private final class Tag: Equatable, CustomStringConvertible {
    let name: String
    init(_ name: String) { self.name = name }
    static func == (a: Tag, b: Tag) -> Bool { a === b }
    var description: String { name }
}

private typealias Machine = ProxyStateMachine<Tag>

private func head(_ uri: String = "/a", _ method: HTTPMethod = .GET) -> HTTPRequestHead {
    HTTPRequestHead(version: .http1_1, method: method, uri: uri, headers: ["host": "gw"])
}

private let chunk = ByteBuffer(string: "abc")

extension ProxyStateMachine {
    /// The state's name and its one piece of data, for comparing in tests.
    fileprivate var phase: String {
        switch state {
        case .idle: "idle"
        case .active: "active"
        case .discarding(let close): "discarding(close: \(close))"
        case .closed: "closed"
        }
    }
}

/// A machine with a request in flight (its head read and routed).
private func active(_ tag: Tag = Tag("x"), keepAlive: Bool = true, hasBody: Bool = false) -> Machine {
    var machine = Machine()
    #expect(machine.clientRead(.head(head())) == .startRequest(head()))
    #expect(machine.requestStarted(tag, keepAlive: keepAlive, hasBody: hasBody) == .none)
    return machine
}

/// A machine dropping the body of a request it answered before routing.
private func discarding(close: Bool) -> Machine {
    var machine = Machine()
    _ = machine.clientRead(.head(head()))
    _ = machine.answeredBeforeRouting(keepAlive: !close, hasBody: false)
    #expect(machine.phase == "discarding(close: \(close))")
    return machine
}

private func closed() -> Machine {
    var machine = Machine()
    #expect(machine.inputClosed() == .close)
    #expect(machine.phase == "closed")
    return machine
}

/// Every event of ``ProxyStateMachine`` in every state, including those the handler never sends in that state.
@Suite struct ProxyStateMachineTransitionTests {
    // MARK: - idle

    @Test func idleStartsARequestOnAHead() {
        var machine = Machine()
        #expect(machine.clientRead(.head(head())) == .startRequest(head()))
        #expect(machine.phase == "idle", "idle until the handler says what became of the head")
        let tag = Tag("a")
        #expect(machine.requestStarted(tag, keepAlive: true, hasBody: false) == .none)
        #expect(machine.phase == "active")
        #expect(machine.current === tag)
        #expect(!machine.closeAfter)
        #expect(machine.canStillAnswer && machine.awaitingResponseHead && !machine.requestComplete)
    }

    @Test func idleIgnoresBodyAndEndWithoutAHead() {
        // Cannot happen: the decoder sends a head first.
        var machine = Machine()
        #expect(machine.clientRead(.body(chunk)) == .none)
        #expect(machine.clientRead(.end(nil)) == .none)
        #expect(machine.phase == "idle")
    }

    @Test func idleAnswersBeforeRoutingAndDropsTheBody() {
        var keep = Machine()
        #expect(
            keep.answeredBeforeRouting(keepAlive: true, hasBody: false)
                == .writeLocal(close: false, linger: false, idle: false))
        #expect(keep.phase == "discarding(close: false)")

        var withBody = Machine()
        #expect(
            withBody.answeredBeforeRouting(keepAlive: true, hasBody: true)
                == .writeLocal(close: true, linger: true, idle: false))
        #expect(withBody.phase == "discarding(close: true)")

        var noKeepAlive = Machine()
        #expect(
            noKeepAlive.answeredBeforeRouting(keepAlive: false, hasBody: false)
                == .writeLocal(close: true, linger: false, idle: false))
        #expect(noKeepAlive.phase == "discarding(close: true)")
    }

    @Test func idleClosesOnHalfCloseDrainAndKeepAliveTimeout() {
        var halfClosed = Machine()
        #expect(halfClosed.inputClosed() == .close)
        #expect(halfClosed.phase == "closed")

        var draining = Machine()
        #expect(draining.finishAndClose() == .close)
        #expect(draining.phase == "closed")

        var timedOut = Machine()
        #expect(timedOut.keepAliveTimedOut() == .close)
        #expect(timedOut.phase == "idle", "the channel closing brings clientInactive")
    }

    @Test func idleAnswersSlowAndMalformedHeads() {
        var slow = Machine()
        #expect(slow.headerTimedOut() == .answerHeaderTimeout)
        #expect(slow.phase == "closed")

        var malformed = Machine()
        #expect(malformed.parseError() == .answerMalformed(abandoning: nil))
        #expect(malformed.phase == "closed")
    }

    @Test func idleIgnoresExchangeEvents() {
        // Cannot happen: only an exchange in flight parks, spools, connects or answers.
        var machine = Machine()
        #expect(machine.parked(true) == .none)
        #expect(machine.spoolWriteStarted() == .none)
        #expect(machine.spoolWriteFinished() == .none)
        #expect(machine.upstreamAttached(writable: false) == .none)
        #expect(machine.upstreamDetached() == .none)
        #expect(machine.upstreamWritabilityChanged(false) == .none)
        #expect(machine.responseHeadArrived(closeRequired: true) == .none)
        #expect(machine.responseBuffering() == .none)
        #expect(machine.responseStreaming() == .none)
        #expect(machine.responseEnded(reusable: true) == .none)
        #expect(machine.responseRestarted() == .none)
        #expect(machine.responseWritten() == .none)
        #expect(machine.answeredLocally(close: false) == .none)
        #expect(machine.failedMidResponse() == .none)
        #expect(machine.lingerExpired() == .none)
        #expect(machine.settledIdle() == .none)
        #expect(machine.phase == "idle")
        #expect(machine.current == nil && !machine.canStillAnswer && machine.spoolWrites == 0)
    }

    @Test func idleClientGoingAwayCloses() {
        var machine = Machine()
        #expect(machine.clientInactive() == .clientGone(abandoning: nil))
        #expect(machine.phase == "closed")
    }

    // MARK: - active: the request side

    @Test func activePassesBodyAndEndToTheExchange() {
        let tag = Tag("a")
        var machine = active(tag, hasBody: true)
        #expect(machine.clientRead(.body(chunk)) == .requestBody(tag, chunk, forward: true))
        #expect(machine.clientRead(.end(nil)) == .requestEnd(tag))
        #expect(machine.requestComplete)
        #expect(machine.phase == "active")
    }

    @Test func activeQueuesAPipelinedHeadAndEverythingAfterIt() {
        let tag = Tag("a")
        var machine = active(tag)
        #expect(machine.clientRead(.end(nil)) == .requestEnd(tag))
        #expect(machine.clientRead(.head(head("/b"))) == .pauseReading)
        #expect(machine.clientRead(.body(chunk)) == .none)
        #expect(machine.clientRead(.end(nil)) == .none)
        #expect(machine.queue.count == 3)
        #expect(machine.readPaused)
    }

    @Test func activeRefusesASecondStart() {
        // Cannot happen: a head that arrives while a request is in flight is queued, never started.
        var machine = active()
        #expect(machine.requestStarted(Tag("b"), keepAlive: true, hasBody: false) == .close)
        #expect(machine.answeredBeforeRouting(keepAlive: true, hasBody: false) == .close)
    }

    @Test func activeIgnoresTimersOfOtherStates() {
        var machine = active()
        #expect(machine.keepAliveTimedOut() == .none)
        #expect(machine.headerTimedOut() == .none)
        #expect(machine.lingerExpired() == .none)
        #expect(machine.settledIdle() == .none)
        #expect(machine.phase == "active")
    }

    // MARK: - active: reading

    @Test func parkingPausesReading() {
        var machine = active()
        #expect(machine.parked(true) == .pauseReading)
        #expect(machine.updateReading() == .none, "no change, no action")
        #expect(machine.parked(false) == .resumeReading)
    }

    @Test func stagedBodyWritesPauseReadingUntilAllAreDone() {
        var machine = active(hasBody: true)
        #expect(machine.spoolWriteStarted() == .pauseReading)
        #expect(machine.spoolWriteStarted() == .none)
        #expect(machine.spoolWrites == 2)
        #expect(machine.spoolWriteFinished() == .none)
        #expect(machine.spoolWriteFinished() == .resumeReading)
    }

    @Test func aFullUpstreamPausesReadingUntilItDrains() {
        var machine = active(hasBody: true)
        #expect(machine.upstreamAttached(writable: false) == .none)
        #expect(machine.updateReading() == .pauseReading)
        #expect(machine.upstreamWritabilityChanged(true) == .resumeReading)
        #expect(machine.upstreamWritabilityChanged(false) == .pauseReading)
        #expect(machine.upstreamDetached() == .none)
        #expect(machine.updateReading() == .resumeReading)
        // A detached connection's writability no longer counts.
        #expect(machine.upstreamWritabilityChanged(false) == .none)
    }

    @Test func aFullUpstreamDoesNotPauseABodyBeingDropped() {
        var machine = active(hasBody: true)
        _ = machine.upstreamAttached(writable: true)
        #expect(machine.responseHeadArrived(closeRequired: false) == .stopSendingBody)
        #expect(machine.upstreamWritabilityChanged(false) == .none)
        #expect(!machine.readPaused)
    }

    // MARK: - active: the answer

    @Test func aCompleteExchangeGoesIdle() {
        let tag = Tag("a")
        var machine = active(tag)
        _ = machine.clientRead(.end(nil))
        _ = machine.upstreamAttached(writable: true)
        #expect(machine.responseHeadArrived(closeRequired: false) == .none)
        #expect(!machine.canStillAnswer)
        #expect(machine.responseEnded(reusable: true) == .releaseUpstream(reuse: true))
        #expect(machine.responseWritten() == .finishExchange(tag, close: false))
        #expect(machine.phase == "idle")
    }

    @Test func anAnswerThatMustCloseClosesAfterIt() {
        let tag = Tag("a")
        var framing = active(tag)
        _ = framing.clientRead(.end(nil))
        #expect(framing.responseHeadArrived(closeRequired: true) == .none)
        #expect(framing.closeAfter)
        #expect(framing.responseWritten() == .finishExchange(tag, close: true))
        #expect(framing.phase == "closed")

        var noKeepAlive = active(tag, keepAlive: false)
        _ = noKeepAlive.clientRead(.end(nil))
        _ = noKeepAlive.responseHeadArrived(closeRequired: false)
        #expect(noKeepAlive.responseWritten() == .finishExchange(tag, close: true))
    }

    @Test func anEarlyAnswerDropsTheRestOfTheBodyAndCloses() {
        let tag = Tag("a")
        var machine = active(tag, hasBody: true)
        _ = machine.upstreamAttached(writable: true)
        #expect(machine.responseHeadArrived(closeRequired: false) == .stopSendingBody)
        #expect(machine.bodyDropped && machine.closeAfter)
        #expect(machine.clientRead(.body(chunk)) == .requestBody(tag, chunk, forward: false))
        #expect(machine.responseEnded(reusable: true) == .releaseUpstream(reuse: false), "the request never went whole")
        #expect(machine.responseWritten() == .endEarlyAnswer(tag))
        #expect(machine.phase == "discarding(close: true)")
        #expect(machine.clientRead(.end(nil)) == .stopDiscarding(close: true))
        #expect(machine.phase == "closed")
    }

    @Test func theEndOfADroppedBodyFinishesAnAnswerAlreadyComplete() {
        // The answer is complete but a filter still holds it (not yet written) when the body's end arrives.
        let tag = Tag("a")
        var machine = active(tag, hasBody: true)
        _ = machine.responseHeadArrived(closeRequired: false)
        _ = machine.responseBuffering()
        #expect(machine.responseEnded(reusable: true) == .none, "no connection attached")
        #expect(machine.clientRead(.end(nil)) == .finishExchange(tag, close: true))
        #expect(machine.phase == "closed")
    }

    @Test func theEndOfADroppedBodyWaitsForTheAnswer() {
        let tag = Tag("a")
        var machine = active(tag, hasBody: true)
        _ = machine.responseHeadArrived(closeRequired: false)
        #expect(machine.clientRead(.end(nil)) == .none)
        #expect(machine.requestComplete && machine.bodyDropped)
        _ = machine.responseEnded(reusable: false)
        #expect(machine.responseWritten() == .finishExchange(tag, close: true))
    }

    @Test func bufferingAndStreamingDecideWhetherTheGatewayMayStillAnswer() {
        var machine = active()
        _ = machine.clientRead(.end(nil))
        _ = machine.responseHeadArrived(closeRequired: false)
        #expect(machine.responseBuffering() == .none)
        #expect(machine.canStillAnswer && !machine.awaitingResponseHead)
        #expect(machine.responseStreaming() == .none)
        #expect(!machine.canStillAnswer)
        #expect(machine.responseRestarted() == .none)
        #expect(machine.awaitingResponseHead)
    }

    @Test func answeringLocallyWithTheRequestComplete() {
        var keep = active()
        _ = keep.clientRead(.end(nil))
        #expect(keep.answeredLocally(close: false) == .writeLocal(close: false, linger: false, idle: true))
        #expect(keep.phase == "idle")

        var close = active()
        _ = close.clientRead(.end(nil))
        #expect(close.answeredLocally(close: true) == .writeLocal(close: true, linger: false, idle: false))
        #expect(close.phase == "closed")

        var noKeepAlive = active(keepAlive: false)
        _ = noKeepAlive.clientRead(.end(nil))
        #expect(noKeepAlive.answeredLocally(close: false) == .writeLocal(close: true, linger: false, idle: false))
        #expect(noKeepAlive.phase == "closed")
    }

    @Test func answeringLocallyBeforeTheRequestIsOver() {
        var withBody = active(hasBody: true)
        #expect(withBody.answeredLocally(close: false) == .writeLocal(close: true, linger: true, idle: false))
        #expect(withBody.phase == "discarding(close: true)")

        // A request with no body whose end is still to come: nothing to linger for, the connection stays.
        var noBody = active()
        #expect(noBody.answeredLocally(close: false) == .writeLocal(close: false, linger: false, idle: false))
        #expect(noBody.phase == "discarding(close: false)")
        #expect(noBody.clientRead(.end(nil)) == .stopDiscarding(close: false))
        #expect(noBody.phase == "idle")
    }

    @Test func aBrokenAnswerCloses() {
        var machine = active()
        _ = machine.responseHeadArrived(closeRequired: false)
        #expect(machine.failedMidResponse() == .close)
        #expect(machine.phase == "closed")
    }

    @Test func malformedInputBeforeAnyAnswerIsAnswered() {
        let tag = Tag("a")
        var awaiting = active(tag, hasBody: true)
        _ = awaiting.clientRead(.head(head("/b")))
        #expect(awaiting.parseError() == .answerMalformed(abandoning: tag))
        #expect(awaiting.phase == "closed")
        #expect(awaiting.queue.isEmpty)

        var buffering = active(tag)
        _ = buffering.clientRead(.end(nil))
        _ = buffering.responseHeadArrived(closeRequired: false)
        _ = buffering.responseBuffering()
        #expect(buffering.parseError() == .answerMalformed(abandoning: tag))
    }

    @Test func malformedInputWhileTheAnswerStreamsCloses() {
        var machine = active(hasBody: true)
        _ = machine.responseHeadArrived(closeRequired: false)
        #expect(machine.parseError() == .close)
        #expect(machine.phase == "closed")
    }

    @Test func drainingMakesTheCurrentAnswerTheLast() {
        let tag = Tag("a")
        var machine = active(tag)
        #expect(machine.finishAndClose() == .none)
        #expect(machine.closeAfter)
        _ = machine.clientRead(.end(nil))
        _ = machine.responseHeadArrived(closeRequired: false)
        #expect(machine.responseWritten() == .finishExchange(tag, close: true))
        #expect(machine.phase == "closed")
    }

    @Test func drainingMakesTheCurrentAnswerTheLastEvenWithAQueuedRequest() {
        var machine = active()
        _ = machine.clientRead(.end(nil))
        _ = machine.clientRead(.head(head("/b")))
        _ = machine.finishAndClose()
        #expect(machine.answeredLocally(close: false) == .writeLocal(close: true, linger: false, idle: false))
        #expect(machine.phase == "closed")
    }

    @Test func aRequestStartedWhileDrainingClosesAfterItsAnswer() {
        var machine = active()
        _ = machine.clientRead(.end(nil))
        _ = machine.clientRead(.head(head("/b")))
        _ = machine.answeredLocally(close: false)
        // Idle with a queued request: the drain starts between the answer and the queue running.
        #expect(machine.finishAndClose() == .none)
        #expect(machine.beginDrain() == true)
        #expect(machine.nextQueued() == .startRequest(head("/b")))
        #expect(machine.requestStarted(Tag("b"), keepAlive: true, hasBody: false) == .none)
        #expect(machine.closeAfter)
    }

    @Test func halfCloseWhileActiveClosesOnceIdle() {
        let tag = Tag("a")
        var machine = active(tag)
        #expect(machine.inputClosed() == .none)
        _ = machine.clientRead(.end(nil))
        _ = machine.responseHeadArrived(closeRequired: false)
        #expect(machine.responseWritten() == .finishExchange(tag, close: false))
        #expect(machine.settledIdle() == .close)
        #expect(machine.phase == "closed")
    }

    @Test func theClientGoingAwayAbandonsTheExchange() {
        let tag = Tag("a")
        var machine = active(tag)
        _ = machine.clientRead(.head(head("/b")))
        #expect(machine.clientInactive() == .clientGone(abandoning: tag))
        #expect(machine.phase == "closed")
        #expect(machine.queue.isEmpty)
    }

    @Test func aLocalAnswerClosesOnceWrittenUnlessTheBodyIsStillDropped() {
        #expect(closed().localAnswerFlushed() == .close)
        #expect(discarding(close: true).localAnswerFlushed() == .none)
        #expect(active().localAnswerFlushed() == .close)
    }

    // MARK: - discarding

    @Test func discardingDropsTheBodyUntilItsEnd() {
        var keep = discarding(close: false)
        #expect(keep.clientRead(.body(chunk)) == .none)
        #expect(keep.clientRead(.end(nil)) == .stopDiscarding(close: false))
        #expect(keep.phase == "idle")

        var close = discarding(close: true)
        #expect(close.clientRead(.end(nil)) == .stopDiscarding(close: true))
        #expect(close.phase == "closed")
    }

    @Test func discardingQueuesAPipelinedHead() {
        var machine = discarding(close: false)
        #expect(machine.clientRead(.head(head("/b"))) == .pauseReading)
        #expect(machine.clientRead(.end(nil)) == .none, "queued behind the head")
        #expect(machine.phase == "discarding(close: false)")
    }

    @Test func discardingEndsOnLingerHalfCloseSlowHeadOrMalformedInput() {
        var linger = discarding(close: true)
        #expect(linger.lingerExpired() == .close)
        #expect(linger.phase == "closed")

        var halfClosed = discarding(close: false)
        #expect(halfClosed.inputClosed() == .cancelLingerAndClose)
        #expect(halfClosed.phase == "closed")

        var slow = discarding(close: false)
        #expect(slow.headerTimedOut() == .close)
        #expect(slow.phase == "closed")

        var malformed = discarding(close: false)
        #expect(malformed.parseError() == .answerMalformed(abandoning: nil))
        #expect(malformed.phase == "closed")
    }

    @Test func drainingWhileDiscardingClosesAfterTheBody() {
        var machine = discarding(close: false)
        #expect(machine.finishAndClose() == .none)
        #expect(machine.phase == "discarding(close: true)")
    }

    @Test func discardingIgnoresKeepAliveAndExchangeEvents() {
        var machine = discarding(close: false)
        #expect(machine.keepAliveTimedOut() == .none)
        #expect(machine.parked(true) == .none)
        #expect(machine.responseWritten() == .none)
        #expect(machine.answeredLocally(close: true) == .none)
        #expect(machine.failedMidResponse() == .none)
        #expect(machine.requestStarted(Tag("b"), keepAlive: true, hasBody: false) == .close)
        #expect(machine.phase == "discarding(close: false)")
        #expect(machine.clientInactive() == .clientGone(abandoning: nil))
    }

    // MARK: - closed

    @Test func closedIgnoresEverythingButAHeadAndTheClientGoing() {
        var machine = closed()
        // A head read after the close was asked for: close again (a no-op on a closing channel).
        #expect(machine.clientRead(.head(head())) == .close)
        #expect(machine.clientRead(.body(chunk)) == .none)
        #expect(machine.clientRead(.end(nil)) == .none)
        #expect(machine.inputClosed() == .none)
        #expect(machine.finishAndClose() == .none)
        #expect(machine.keepAliveTimedOut() == .none)
        #expect(machine.headerTimedOut() == .none)
        #expect(machine.lingerExpired() == .none)
        #expect(machine.parseError() == .close)
        #expect(machine.settledIdle() == .none)
        #expect(machine.requestStarted(Tag("b"), keepAlive: true, hasBody: false) == .close)
        #expect(machine.answeredBeforeRouting(keepAlive: true, hasBody: false) == .close)
        #expect(machine.responseWritten() == .none)
        #expect(machine.phase == "closed")
        #expect(machine.clientInactive() == .clientGone(abandoning: nil))
    }

    // MARK: - pipelining

    @Test func queuedRequestsRunInOrderOnceIdle() {
        let first = Tag("a")
        let second = Tag("b")
        var machine = active(first)
        _ = machine.clientRead(.end(nil))
        #expect(machine.clientRead(.head(head("/b", .POST))) == .pauseReading)
        _ = machine.clientRead(.body(chunk))
        _ = machine.clientRead(.end(nil))
        _ = machine.responseHeadArrived(closeRequired: false)
        #expect(machine.responseWritten() == .finishExchange(first, close: false))

        #expect(machine.beginDrain() == true)
        #expect(machine.beginDrain() == false, "a drain inside a drain leaves the parts to the outer one")
        #expect(machine.nextQueued() == .startRequest(head("/b", .POST)))
        _ = machine.requestStarted(second, keepAlive: true, hasBody: true)
        #expect(machine.nextQueued() == .requestBody(second, chunk, forward: true))
        #expect(machine.nextQueued() == .requestEnd(second))
        #expect(machine.nextQueued() == nil)
        #expect(machine.endDrain() == .resumeReading)
        #expect(machine.settledIdle() == .none, "the second request is in flight")
    }

    @Test func aQueuedHeadWaitsWhileTheRequestBeforeItIsAnswered() {
        var machine = active()
        _ = machine.clientRead(.end(nil))
        _ = machine.clientRead(.head(head("/b")))
        _ = machine.clientRead(.end(nil))
        _ = machine.clientRead(.head(head("/c")))
        _ = machine.answeredLocally(close: false)
        #expect(machine.beginDrain() == true)
        #expect(machine.nextQueued() == .startRequest(head("/b")))
        let second = Tag("b")
        _ = machine.requestStarted(second, keepAlive: true, hasBody: false)
        #expect(machine.nextQueued() == .requestEnd(second))
        #expect(machine.nextQueued() == nil, "the head of /c waits for /b's answer")
        #expect(machine.endDrain() == .none, "still paused: /c waits")
        #expect(machine.readPaused)
        #expect(machine.queue.count == 1)
    }

    @Test func aConnectionClosedDuringADrainDropsTheQueue() {
        var machine = active()
        _ = machine.clientRead(.end(nil))
        _ = machine.clientRead(.head(head("/b")))
        _ = machine.clientRead(.end(nil))
        _ = machine.clientRead(.head(head("/c")))
        _ = machine.answeredLocally(close: false)
        #expect(machine.beginDrain() == true)
        #expect(machine.nextQueued() == .startRequest(head("/b")))
        _ = machine.answeredBeforeRouting(keepAlive: true, hasBody: false)
        _ = machine.finishAndClose()
        #expect(machine.nextQueued() == .stopDiscarding(close: true))
        #expect(machine.nextQueued() == nil, "closed: /c is dropped")
        #expect(machine.queue.isEmpty)
        #expect(machine.endDrain() == .none)
    }

    @Test func nothingToDrainStartsNoDrain() {
        var machine = Machine()
        #expect(machine.beginDrain() == false)
    }

    @Test func halfCloseOrDrainWaitsForQueuedRequests() {
        var machine = active()
        _ = machine.clientRead(.end(nil))
        _ = machine.clientRead(.head(head("/b")))
        #expect(machine.inputClosed() == .none)
        _ = machine.answeredLocally(close: false)
        #expect(machine.phase == "idle")
        #expect(machine.keepAliveTimedOut() == .none, "a queued request is in flight")
        #expect(machine.settledIdle() == .none, "the queued request is still to answer")
        #expect(machine.finishAndClose() == .none, "the queued request runs next and closes after its answer")
        #expect(machine.beginDrain() == true)
        #expect(machine.nextQueued() == .startRequest(head("/b")))
        _ = machine.answeredBeforeRouting(keepAlive: true, hasBody: false)
        #expect(machine.nextQueued() == nil)
        #expect(machine.endDrain() == .resumeReading)
    }
}
