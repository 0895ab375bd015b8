import Foundation
import Hummingbird

/// A prediction's server-sent event stream, as the SDK's `SSEDecoder` reads it: blocks of `id:`, `event:` and one
/// `data:` line of JSON, each ended by a blank line, written and flushed one by one as they fall due.
///
/// Events are numbered from 0: `init` (data: the prediction), then one `output` per delay of the plan (data:
/// `{"index", "output", "emitted_at"}`, `emitted_at` in epoch milliseconds so a client can measure how late it got
/// it), then `done` (data: the prediction, finished). Each is due at `anchor` plus the delays before it, so a
/// client that reconnects with `after_id` continues the same timeline; and on one connection never sooner than its
/// delay after the event before it, so a stall (a loaded machine, a late connection) shifts the rest of the stream
/// rather than sending overdue events together. A cancelled prediction's stream ends with
/// `done` at once. With an idle limit (`Prefer: wait=S`) the connection is closed, with no terminal event, when the
/// next event is further away than that.
struct PredictionEventStream: Sendable {
    let state: WriftAIState
    let predictionID: String
    let plan: StreamPlan
    /// Seconds since the epoch that the timeline starts at.
    let anchor: Double
    let afterID: Int?
    let idleLimit: Duration?

    /// How often a sleeping stream looks whether its prediction was cancelled.
    static let cancellationCheck = 0.25

    func response() -> Response {
        let headers: HTTPFields = [
            .contentType: "text/event-stream",
            .cacheControl: "no-cache",
            .init("x-accel-buffering")!: "no",
        ]
        let stream = self
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                try await stream.write(to: &writer)
            })
    }

    /// Offsets of every event from the anchor: `init`, the outputs, `done`.
    private var offsets: [Double] {
        var offsets = [0.0]
        var total = 0.0
        for delay in plan.delays {
            total += delay.inSeconds
            offsets.append(total)
        }
        offsets.append(total + plan.finalDelay.inSeconds)
        return offsets
    }

    private func write(to writer: inout any ResponseBodyWriter) async throws {
        await state.counters.count(\.streamsOpened)
        let offsets = offsets
        let doneID = offsets.count - 1
        var lastEvent = Date().timeIntervalSince1970
        var lastWrite = lastEvent
        var id = (afterID ?? -1) + 1
        var previousSent: Double?
        do {
            while id <= doneID {
                var cancelled = false
                // Wait for the event, writing heartbeats, watching for a cancellation and for the idle limit.
                while true {
                    let now = Date().timeIntervalSince1970
                    if id > 0 && id < doneID, let prediction = await state.predictions.get(predictionID),
                        prediction.cancelledAt != nil
                    {
                        cancelled = true
                        break
                    }
                    var due = anchor + offsets[id]
                    if let previousSent, id > 0 { due = max(due, previousSent + offsets[id] - offsets[id - 1]) }
                    if now >= due { break }
                    if let idleLimit, now - lastEvent >= idleLimit.inSeconds {
                        // Idle: close without a terminal event, as the platform does.
                        try await writer.finish(nil)
                        return
                    }
                    if let heartbeat = plan.heartbeat, now - lastWrite >= heartbeat.inSeconds {
                        try await writer.write(ByteBuffer(string: ": keep-alive\n\n"))
                        lastWrite = now
                        continue
                    }
                    var sleep = min(due - now, Self.cancellationCheck)
                    if let heartbeat = plan.heartbeat { sleep = min(sleep, lastWrite + heartbeat.inSeconds - now) }
                    if let idleLimit { sleep = min(sleep, lastEvent + idleLimit.inSeconds - now) }
                    try await Task.sleep(for: .microseconds(Int64(max(sleep, 0.001) * 1_000_000)))
                }
                if cancelled { id = doneID }
                try await writer.write(await event(id: id, doneID: doneID))
                await state.counters.count(\.streamEvents)
                lastEvent = Date().timeIntervalSince1970
                lastWrite = lastEvent
                previousSent = lastEvent
                id += 1
            }
            try await writer.finish(nil)
            await state.counters.count(\.streamsFinished)
        } catch {
            await state.counters.count(\.streamsAborted)
            throw error
        }
    }

    /// The bytes of event `id`.
    private func event(id: Int, doneID: Int) async -> ByteBuffer {
        let now = Date().timeIntervalSince1970
        let name: String
        let data: JSONValue
        switch id {
        case 0:
            name = "init"
            data =
                await state.predictions.get(predictionID)?.details(now: now) ?? .object([("id", .string(predictionID))])
        case doneID:
            name = "done"
            data =
                await state.predictions.get(predictionID)?.details(now: max(now, anchor + offsets[doneID]))
                ?? .object([("id", .string(predictionID))])
        default:
            name = "output"
            data = .object([
                ("index", .int(id - 1)),
                ("output", .string("chunk \(id) ")),
                ("emitted_at", .int(Int((now * 1000).rounded(.down)))),
            ])
        }
        var text = "id: \(id)\nevent: \(name)\ndata: "
        text += String(decoding: data.bytes, as: UTF8.self)
        text += "\n\n"
        return ByteBuffer(string: text)
    }
}
