import Foundation

/// One prediction as the sandbox keeps it. Its life is a timeline fixed at creation: `init` at once, each
/// `output` event after its delay, then `done`; `get` reports `started` until the `done` time and `succeeded`
/// after it (or `cancelled` once cancelled), so polling and streaming agree.
struct SandboxPrediction: Sendable {
    let id: String
    let owner: String
    let name: String
    let versionNumber: Int
    let input: JSONValue
    let stream: Bool
    let plan: StreamPlan
    /// Seconds since the epoch, with a fraction.
    let createdAt: Double
    var cancelledAt: Double?

    /// When the `done` event is due.
    var finishesAt: Double { createdAt + plan.totalDuration.inSeconds }

    func status(now: Double) -> String {
        if let cancelledAt, cancelledAt < finishesAt { return "cancelled" }
        return now >= finishesAt ? "succeeded" : "started"
    }

    func isTerminal(now: Double) -> Bool { status(now: now) != "started" }

    /// `Prediction`: what lists show.
    func summary(now: Double) -> [(String, JSONValue)] {
        let status = status(now: now)
        let updated = status == "started" ? createdAt : (status == "cancelled" ? cancelledAt! : finishesAt)
        return [
            ("id", .string(id)),
            ("created_at", .string(Self.timestamp(createdAt))),
            ("status", .string(status)),
            ("updated_at", .string(Self.timestamp(updated))),
            ("setup_time", "0.000"),
            (
                "execution_time",
                status == "succeeded" ? .string(String(format: "%.3f", plan.totalDuration.inSeconds)) : .null
            ),
            (
                "model",
                .object([("owner", .string(owner)), ("name", .string(name)), ("version_number", .int(versionNumber))])
            ),
        ]
    }

    /// `PredictionWithDetails`: what `get`, `create` and `cancel` answer, and the `init`/`done` events carry.
    func details(now: Double) -> JSONValue {
        let status = status(now: now)
        return .object(
            summary(now: now) + [
                ("input", input),
                (
                    "output",
                    status == "succeeded" ? .object([("echo", input), ("chunks", .int(plan.delays.count))]) : .null
                ),
                ("error", .null),
                (
                    "metrics",
                    status == "succeeded" ? .object([("predict_time", .double(plan.totalDuration.inSeconds))]) : .null
                ),
                ("stream", .bool(stream && status == "started")),
            ])
    }

    static func timestamp(_ seconds: Double) -> String {
        let whole = Int(seconds.rounded(.down))
        let millis = Int(((seconds - Double(whole)) * 1000).rounded(.down))
        let text = S3Encoding.iso8601(epochSeconds: whole)
        return text.dropLast() + "." + String(format: "%03d", min(millis, 999)) + "Z"
    }
}

/// Predictions by id, newest last, bounded so a long demo cannot grow it forever.
actor PredictionStore {
    static let capacity = 1000
    private var predictions: [String: SandboxPrediction] = [:]
    private var order: [String] = []

    func add(_ prediction: SandboxPrediction) {
        predictions[prediction.id] = prediction
        order.append(prediction.id)
        if order.count > Self.capacity {
            predictions.removeValue(forKey: order.removeFirst())
        }
    }

    func get(_ id: String) -> SandboxPrediction? { predictions[id] }

    /// Marks a prediction cancelled unless it already finished; nil when there is none.
    func cancel(_ id: String, now: Double) -> SandboxPrediction? {
        guard var prediction = predictions[id] else { return nil }
        if !prediction.isTerminal(now: now) {
            prediction.cancelledAt = now
            predictions[id] = prediction
        }
        return prediction
    }

    /// Newest first.
    func all() -> [SandboxPrediction] {
        order.reversed().compactMap { predictions[$0] }
    }

    static func newID() -> String {
        "prd_" + (0..<12).map { _ in UInt8.random(in: 0...255) }.hexString
    }
}

extension Duration {
    /// Seconds with a fraction.
    var inSeconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
