import Foundation
import Hummingbird

extension WriftAIResponder {
    /// `GET /v1/predictions`: newest first, in cursor pages; `statuses` (repeated) filters.
    func listPredictions(_ request: Request, target: RequestTarget, context: Context) async -> Response {
        let now = Date().timeIntervalSince1970
        let statuses = Set(target.parameters.filter { $0.name == "statuses" }.map(\.value))
        let items = await state.predictions.all()
            .filter { statuses.isEmpty || statuses.contains($0.status(now: now)) }
            .map { JSONValue.object($0.summary(now: now)) }
        return await page(items, request: request, target: target, context: context)
    }

    /// `POST /v1/predictions` `{"model": "owner/name[:version]", "input": {...}, "stream"?: bool, "webhook"?: ...}`.
    ///
    /// 201 with the prediction (status `started`). With `Prefer: wait[=seconds]` the answer waits for the end
    /// (up to the given seconds, else 60 s); with `Prefer: wait` and `"stream": true` the answer is the prediction's
    /// event stream itself, as the SDK's `create(wait=True, stream=True)` reads it.
    func createPrediction(_ request: Request, recorded: inout RecordedRequest) async throws -> Response {
        let object: [String: RequestJSON]
        switch try await Self.readObject(request, recorded: &recorded) {
        case .success(let value): object = value
        case .failure(let error): return error.response
        }
        guard case .string(let reference)? = object["model"] else {
            return WriftAIProblem.invalid("model", "a model reference (owner/name or owner/name:version) is required")
        }
        let (owner, rest) = Self.split(reference, at: "/")
        let (name, version) = Self.split(rest ?? "", at: ":")
        guard !owner.isEmpty, !name.isEmpty, version.map({ !$0.isEmpty }) ?? true else {
            return WriftAIProblem.invalid("model", "must be owner/name or owner/name:version")
        }
        guard state.catalogue.model(owner: owner, name: name) != nil else {
            return WriftAIProblem.notFound("Model not found.")
        }
        guard version == nil || version == "1" else { return WriftAIProblem.notFound("Model version not found.") }
        guard case .object? = object["input"] else { return WriftAIProblem.invalid("input", "an object is required") }
        var stream = false
        switch object["stream"] {
        case nil, .null?: break
        case .bool(let value)?: stream = value
        default: return WriftAIProblem.invalid("stream", "must be a boolean")
        }
        let prediction = SandboxPrediction(
            id: PredictionStore.newID(), owner: owner, name: name, versionNumber: 1, input: object["input"]!.jsonValue,
            stream: stream, plan: await state.settings.values.stream, createdAt: Date().timeIntervalSince1970
        )
        await state.predictions.add(prediction)

        guard let prefer = Self.preferWait(request) else {
            return JSONResponses.json(.created, prediction.details(now: Date().timeIntervalSince1970))
        }
        if stream {
            return PredictionEventStream(
                state: state, predictionID: prediction.id, plan: prediction.plan,
                anchor: prediction.createdAt, afterID: nil, idleLimit: prefer
            ).response()
        }
        // Wait for the end, or for what the client asked, whichever comes first.
        let remaining = prediction.finishesAt - Date().timeIntervalSince1970
        let limit = prefer.map(\.inSeconds) ?? 60
        if remaining > 0 {
            try await Task.sleep(for: .milliseconds(Int64(min(remaining, limit) * 1000) + 1))
        }
        let latest = await state.predictions.get(prediction.id) ?? prediction
        return JSONResponses.json(.created, latest.details(now: Date().timeIntervalSince1970))
    }

    /// `GET /v1/predictions/{id}/stream[?after_id=N]`, with `Prefer: wait=S` closing the connection after S idle
    /// seconds (the SDK reconnects with `after_id`).
    ///
    /// Test knobs in the query (the SDK never sends them): `events`, `interval_ms`, `delays_ms` (comma-separated),
    /// `final_ms` replace the prediction's timeline with a new one starting now; `heartbeat_ms` adds keep-alive
    /// comments.
    func streamPrediction(_ request: Request, id: String, target: RequestTarget) async -> Response {
        guard let prediction = await state.predictions.get(id) else {
            return WriftAIProblem.notFound("Prediction not found.")
        }
        let query = target.parameters
        func value(_ name: String) -> String? { query.last { $0.name == name }?.value }
        var plan = prediction.plan
        var anchor = prediction.createdAt
        switch StreamPlanQuery.parse(value) {
        case .failure(let error):
            return error.response
        case .success(let override):
            if let timeline = override.timeline {
                plan = timeline
                anchor = Date().timeIntervalSince1970
            }
            if let heartbeat = override.heartbeat { plan.heartbeat = heartbeat }
        }
        let afterID = value("after_id").flatMap { Int($0) }
        let idle = Self.preferWait(request) ?? nil
        return PredictionEventStream(
            state: state, predictionID: id, plan: plan, anchor: anchor, afterID: afterID, idleLimit: idle
        ).response()
    }

    /// `Prefer: wait` (nil inside: no limit) or `Prefer: wait=S`; nil when the request has no such preference.
    static func preferWait(_ request: Request) -> Duration?? {
        for field in request.headers[values: .init("prefer")!] {
            for preference in field.split(separator: ",") {
                let text = String(preference).trimmingASCIIWhitespace()
                if text == "wait" { return .some(nil) }
                if text.hasPrefix("wait="), let seconds = Double(text.dropFirst(5)), seconds.isFinite, seconds >= 0 {
                    return .some(.milliseconds(Int64(seconds * 1000)))
                }
            }
        }
        return nil
    }

    private static func split(_ text: String, at separator: Character) -> (String, String?) {
        guard let index = text.firstIndex(of: separator) else { return (text, nil) }
        return (String(text[..<index]), String(text[text.index(after: index)...]))
    }
}

/// The stream knobs a query (or a control body) may carry.
struct StreamPlanQuery {
    /// A new timeline, when any of `events`, `interval_ms`, `delays_ms`, `final_ms` was given.
    var timeline: StreamPlan?
    var heartbeat: Duration?

    /// `events` (outputs, default 3) `interval_ms` apart (default 100), or an explicit `delays_ms` list; `final_ms`
    /// before `done`; `heartbeat_ms`.
    static func parse(_ value: (String) -> String?) -> Result<StreamPlanQuery, ResponseError> {
        func number(_ name: String, max: Int) -> Result<Int?, ResponseError> {
            guard let raw = value(name) else { return .success(nil) }
            guard let n = LimitOffsetPage.positiveInt(raw), n <= max else {
                return .failure(ResponseError(WriftAIProblem.invalid(name, "must be a whole number from 0 to \(max)")))
            }
            return .success(n)
        }
        let hour = 3_600_000
        do {
            let events = try number("events", max: 10_000).get()
            let interval = try number("interval_ms", max: hour).get()
            let final = try number("final_ms", max: hour).get()
            let heartbeat = try number("heartbeat_ms", max: hour).get()
            var delays: [Duration]?
            if let raw = value("delays_ms") {
                var list: [Duration] = []
                for part in raw.split(separator: ",", omittingEmptySubsequences: true) {
                    guard let n = LimitOffsetPage.positiveInt(String(part)), n <= hour, list.count < 10_000 else {
                        return .failure(
                            ResponseError(
                                WriftAIProblem.invalid("delays_ms", "must be whole numbers of ms, comma-separated")))
                    }
                    list.append(.milliseconds(n))
                }
                delays = list
            }
            if heartbeat != nil && heartbeat! < 10 {
                return .failure(ResponseError(WriftAIProblem.invalid("heartbeat_ms", "must be 10 or more")))
            }
            var result = StreamPlanQuery(heartbeat: heartbeat.map { .milliseconds($0) })
            if events != nil || interval != nil || final != nil || delays != nil {
                let step = Duration.milliseconds(interval ?? 100)
                var plan = StreamPlan(delays: delays ?? Array(repeating: step, count: events ?? 3))
                plan.finalDelay = .milliseconds(final ?? 0)
                result.timeline = plan
            }
            return .success(result)
        } catch {
            return .failure(error)
        }
    }
}
