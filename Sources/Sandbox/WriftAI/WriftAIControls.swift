import Hummingbird

extension WriftAIResponder {
    // MARK: Control routes (no token, not recorded, not counted)

    /// The test controls under `/sandbox/`:
    /// - `GET`/`DELETE /sandbox/requests`: the recorded requests (``RecordedRequest`` as JSON), or forget them.
    /// - `GET`/`DELETE /sandbox/counters`: ``WriftAISandboxCounters``, or zero them.
    /// - `GET /sandbox/healthz`.
    /// - `POST /sandbox/rate-limit` `{"count"?: 1, "path"?: "/v1/models", "reset_seconds"?: 1}`: the next `count`
    ///   requests (to `path`, a path or a route template, else to any `/v1/` path) get 429 with
    ///   `x-ratelimit-reset` = now + `reset_seconds`; count 0 cancels. `GET` lists the pending ones.
    /// - `GET`/`POST /sandbox/stream` `{"events"?, "interval_ms"?, "delays_ms"?, "final_ms"?, "heartbeat_ms"?}`: how
    ///   predictions created from now on stream.
    /// - `GET`/`POST /sandbox/urls` `{"lifetime_seconds"?, "part_size"?}`: presigned URL lifetime and upload part size.
    /// - `GET`/`POST /sandbox/pages` `{"urls": true|false}`: whether pages carry `next_url`/`previous_url` (SDK 0.28).
    func control(_ request: Request, target: RequestTarget) async throws -> Response {
        switch (request.method, target.path) {
        case (.get, "/sandbox/requests"), (.head, "/sandbox/requests"):
            return try JSONResponses.encoded(.ok, await recorder.all())
        case (.delete, "/sandbox/requests"):
            await recorder.reset()
            return JSONResponses.noContent()
        case (.get, "/sandbox/healthz"), (.head, "/sandbox/healthz"):
            return JSONResponses.json(.ok, .object([("status", "ok"), ("platform", "wriftai")]))
        case (.get, "/sandbox/counters"), (.head, "/sandbox/counters"):
            return try JSONResponses.encoded(.ok, await state.counters.snapshot())
        case (.delete, "/sandbox/counters"):
            await state.counters.reset()
            return JSONResponses.noContent()
        case (.get, "/sandbox/rate-limit"):
            let rules = await state.rateLimits.pending.map { rule in
                JSONValue.object([
                    ("path", .optional(rule.path)), ("count", .int(rule.remaining)),
                    ("reset_seconds", .int(rule.resetAfter)),
                ])
            }
            return JSONResponses.json(.ok, .array(rules))
        case (.post, "/sandbox/rate-limit"):
            return try await rateLimitControl(request, target: target)
        case (.get, "/sandbox/stream"):
            return Self.streamAnswer(await state.settings.values.stream)
        case (.post, "/sandbox/stream"):
            return try await streamControl(request, target: target)
        case (.get, "/sandbox/pages"):
            return JSONResponses.json(.ok, .object([("urls", .bool(await state.settings.values.pageURLs))]))
        case (.post, "/sandbox/pages"):
            let fields: [String: RequestJSON]
            switch try await SandboxResponder.controlFields(request, target: target) {
            case .success(let value): fields = value
            case .failure(let error): return error.response
            }
            let on: Bool
            switch fields["urls"] {
            case .bool(let value)?: on = value
            case .string("true")?: on = true
            case .string("false")?: on = false
            default: return JSONResponses.fieldError(.badRequest, field: "urls", "true or false is required.")
            }
            await state.settings.setPageURLs(on)
            return JSONResponses.json(.ok, .object([("urls", .bool(on))]))
        case (.get, "/sandbox/urls"):
            return Self.urlsAnswer(await state.settings.values)
        case (.post, "/sandbox/urls"):
            return try await urlsControl(request, target: target)
        case (_, "/sandbox/requests"), (_, "/sandbox/counters"):
            return JSONResponses.methodNotAllowed(request.method, allowed: ["GET", "HEAD", "DELETE"])
        case (_, "/sandbox/rate-limit"), (_, "/sandbox/stream"), (_, "/sandbox/urls"), (_, "/sandbox/pages"):
            return JSONResponses.methodNotAllowed(request.method, allowed: ["GET", "POST"])
        default:
            return JSONResponses.detail(.notFound, "Not found.")
        }
    }

    private func rateLimitControl(_ request: Request, target: RequestTarget) async throws -> Response {
        let fields: [String: RequestJSON]
        switch try await SandboxResponder.controlFields(request, target: target) {
        case .success(let value): fields = value
        case .failure(let error): return error.response
        }
        guard let count = fields["count"].map(SandboxResponder.integer) ?? 1 else {
            return JSONResponses.fieldError(.badRequest, field: "count", "A valid integer is required.")
        }
        guard let reset = fields["reset_seconds"].map(SandboxResponder.integer) ?? 1 else {
            return JSONResponses.fieldError(.badRequest, field: "reset_seconds", "A valid integer is required.")
        }
        var path: String?
        switch fields["path"] {
        case nil, .null?: break
        case .string(let text)?: path = text
        default: return JSONResponses.fieldError(.badRequest, field: "path", "A string is required.")
        }
        do throws(SandboxControlError) {
            try await state.rateLimit(count: count, path: path, resetAfter: reset)
        } catch {
            return JSONResponses.detail(.badRequest, error.description)
        }
        return JSONResponses.json(
            .ok, .object([("count", .int(count)), ("path", .optional(path)), ("reset_seconds", .int(reset))]))
    }

    private func streamControl(_ request: Request, target: RequestTarget) async throws -> Response {
        let fields: [String: RequestJSON]
        switch try await SandboxResponder.controlFields(request, target: target) {
        case .success(let value): fields = value
        case .failure(let error): return error.response
        }
        // The same knobs as the stream route's query; a JSON list of delays is accepted too.
        let value: (String) -> String? = { name in
            switch fields[name] {
            case .string(let text)?: text
            case .number(let n)?: n.rounded() == n && n >= 0 ? String(Int(n)) : String(n)
            case .array(let items)?:
                items.map { item in
                    if case .number(let n) = item { return n.rounded() == n && n >= 0 ? String(Int(n)) : "x" }
                    return "x"
                }.joined(separator: ",")
            default: nil
            }
        }
        switch StreamPlanQuery.parse(value) {
        case .failure(let error):
            return error.response
        case .success(let parsed):
            let current = await state.settings.values.stream
            var plan = parsed.timeline ?? current
            if fields["heartbeat_ms"] != nil { plan.heartbeat = parsed.heartbeat }
            do throws(SandboxControlError) {
                try await state.setStream(plan)
            } catch {
                return JSONResponses.detail(.badRequest, error.description)
            }
            return Self.streamAnswer(plan)
        }
    }

    private func urlsControl(_ request: Request, target: RequestTarget) async throws -> Response {
        let fields: [String: RequestJSON]
        switch try await SandboxResponder.controlFields(request, target: target) {
        case .success(let value): fields = value
        case .failure(let error): return error.response
        }
        var lifetime: Int?
        var partSize: Int?
        if let raw = fields["lifetime_seconds"] {
            guard let n = SandboxResponder.integer(raw) else {
                return JSONResponses.fieldError(.badRequest, field: "lifetime_seconds", "A valid integer is required.")
            }
            lifetime = n
        }
        if let raw = fields["part_size"] {
            guard let n = SandboxResponder.integer(raw) else {
                return JSONResponses.fieldError(.badRequest, field: "part_size", "A valid integer is required.")
            }
            partSize = n
        }
        do throws(SandboxControlError) {
            return Self.urlsAnswer(try await state.setURLs(lifetime: lifetime, partSize: partSize))
        } catch {
            return JSONResponses.detail(.badRequest, error.description)
        }
    }

    static func streamAnswer(_ plan: StreamPlan) -> Response {
        JSONResponses.json(
            .ok,
            .object([
                ("delays_ms", .array(plan.delays.map { .int($0.wholeMilliseconds) })),
                ("final_ms", .int(plan.finalDelay.wholeMilliseconds)),
                ("heartbeat_ms", plan.heartbeat.map { .int($0.wholeMilliseconds) } ?? .null),
                ("total_ms", .int(plan.totalDuration.wholeMilliseconds)),
            ]))
    }

    static func urlsAnswer(_ values: WriftAISettings.Values) -> Response {
        JSONResponses.json(
            .ok, .object([("lifetime_seconds", .int(values.urlLifetime)), ("part_size", .int(values.partSize))]))
    }
}
