import Crypto
import Hummingbird
import Logging

/// The sandbox's single responder.
///
/// It dispatches on the raw request target rather than through Hummingbird's `Router`: the router matches on
/// decoded, split path components, and the sandbox must see (and echo) exactly the bytes a gateway forwarded,
/// `%2F`, doubled slashes and trailing slashes included.
struct SandboxResponder: HTTPResponder {
    typealias Context = SandboxRequestContext

    let apiKey: [UInt8]
    let recorder: RequestRecorder
    let directory: ProviderDirectory
    let bindHost: String
    let linkOrigin: String?
    let logger: Logger

    init(options: SandboxOptions, recorder: RequestRecorder, logger: Logger) {
        self.apiKey = Array(options.apiKey.utf8)
        self.recorder = recorder
        self.directory = ProviderDirectory(count: options.providerCount)
        self.bindHost = options.host
        self.linkOrigin = options.linkOrigin
        self.logger = logger
    }

    func respond(to request: Request, context: Context) async throws -> Response {
        let response = try await route(request, context: context)
        // Method, path and status only: headers (the API key) and queries are never logged.
        logger.debug("\(request.method) \(RequestTarget(request.head.path ?? "").path) -> \(response.status.code)")
        // A HEAD answer keeps the GET's headers but must carry no body.
        return request.method == .head ? response.createHeadResponse() : response
    }

    private func route(_ request: Request, context: Context) async throws -> Response {
        let rawTarget = request.head.path ?? ""
        let target = RequestTarget(rawTarget)

        if target.path.hasPrefix("/sandbox/") {
            return try await control(request, target: target)
        }

        var recorded = RecordedRequest(method: request.method.rawValue, uri: rawTarget, headers: Self.headerPairs(request))
        guard target.path.hasPrefix("/api/v1/") else {
            await recorder.record(recorded)
            return JSONResponses.detail(.notFound, "Not found.")
        }
        guard hasValidKey(request) else {
            // Answer without reading the body; Hummingbird drains it before the next request on the connection.
            await recorder.record(recorded)
            return JSONResponses.detail(.unauthorized, "Invalid API key")
        }

        // Django answers HEAD with the GET view; `respond` then drops the body.
        let method = request.method == .head ? .get : request.method
        switch (method, target.path) {
        case (.get, "/api/v1/users/providers-list/"):
            await recorder.record(recorded)
            return providersList(request, target: target, context: context)

        case (.delete, let path) where Self.isPracticeLocationProvider(path):
            await recorder.record(recorded)
            return JSONResponses.noContent()

        case (.get, "/api/v1/sandbox/download/"):
            await recorder.record(recorded)
            return download(target: target)

        default:
            return try await echo(request, target: target, recorded: &recorded)
        }
    }

    // MARK: Assured routes

    /// `GET /api/v1/users/providers-list/`: DRF limit/offset pagination over the fixed directory.
    private func providersList(_ request: Request, target: RequestTarget, context: Context) -> Response {
        let query = target.parameters
        let page = LimitOffsetPage(query: query, count: directory.providers.count)
        let base = origin(request, context: context) + target.path
        return JSONResponses.json(.ok, .object([
            ("count", .int(page.count)),
            ("next", .optional(page.nextLink(base: base, query: query))),
            ("previous", .optional(page.previousLink(base: base, query: query))),
            ("results", .array(page.slice(directory.providers).map(\.json))),
        ]))
    }

    /// `DELETE /api/v1/users/practice-location-provider/{id}/`: one non-empty segment, then the slash.
    static func isPracticeLocationProvider(_ path: String) -> Bool {
        let prefix = "/api/v1/users/practice-location-provider/"
        guard path.hasPrefix(prefix) else { return false }
        let rest = path.dropFirst(prefix.count)
        guard rest.count >= 2, rest.last == "/" else { return false }
        return !rest.dropLast().contains("/")
    }

    /// `GET /api/v1/sandbox/download/?bytes=N`: N deterministic bytes in 64 KiB chunks. Each write waits for the
    /// channel to drain (the outbound writer's backpressure), and the chunk is one shared buffer, so memory stays
    /// flat whatever N is.
    private func download(target: RequestTarget) -> Response {
        guard let raw = target.parameters.last(where: { $0.name == "bytes" })?.value else {
            return JSONResponses.fieldError(.badRequest, field: "bytes", "This field is required.")
        }
        guard let total = LimitOffsetPage.positiveInt(raw) else {
            return JSONResponses.fieldError(.badRequest, field: "bytes", "A valid integer is required.")
        }
        let chunk = SandboxPayload.alignedChunk
        let body = ResponseBody(contentLength: total) { writer in
            var remaining = total
            while remaining > 0 {
                let n = min(remaining, chunk.readableBytes)
                try await writer.write(n == chunk.readableBytes ? chunk : chunk.getSlice(at: chunk.readerIndex, length: n)!)
                remaining -= n
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "application/octet-stream"], body: body)
    }

    /// Any other request under `/api/v1/`: hash the body as it streams in, then describe what arrived.
    private func echo(_ request: Request, target: RequestTarget, recorded: inout RecordedRequest) async throws -> Response {
        var hasher = SHA256()
        var total = 0
        do {
            for try await buffer in request.body {
                total += buffer.readableBytes
                buffer.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
            }
        } catch {
            // The client went away mid-body: keep what was seen, with no digest.
            recorded.bodyBytes = total
            await recorder.record(recorded)
            throw error
        }
        let digest = hasher.finalize().hexString
        recorded.bodyBytes = total
        recorded.bodySHA256 = digest
        await recorder.record(recorded)
        return JSONResponses.json(.ok, .object([
            ("method", .string(request.method.rawValue)),
            ("path", .string(target.path)),
            ("query", .optional(target.query)),  // null when the target had no `?`
            ("body_bytes", .int(total)),
            ("body_sha256", .string(digest)),
        ]))
    }

    // MARK: Control routes (no key, not recorded)

    private func control(_ request: Request, target: RequestTarget) async throws -> Response {
        switch (request.method, target.path) {
        case (.get, "/sandbox/requests"), (.head, "/sandbox/requests"):
            return try JSONResponses.encoded(.ok, await recorder.all())
        case (.delete, "/sandbox/requests"):
            await recorder.reset()
            return JSONResponses.noContent()
        case (.get, "/sandbox/healthz"), (.head, "/sandbox/healthz"):
            return JSONResponses.json(.ok, .object([("status", "ok")]))
        default:
            return JSONResponses.detail(.notFound, "Not found.")
        }
    }

    // MARK: Helpers

    /// Compares the one `x-api-key` value with the expected key in time independent of where they differ.
    /// Two `x-api-key` fields fail, as Django would see them joined by a comma.
    private func hasValidKey(_ request: Request) -> Bool {
        let values = request.headers[values: .init("x-api-key")!]
        guard values.count == 1 else { return false }
        let given = Array(values[0].utf8)
        guard given.count == apiKey.count else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(given, apiKey) { difference |= a ^ b }
        return difference == 0
    }

    /// `scheme://host[:port]` for absolute links: the configured origin, else the request's `Host` as Django's
    /// `build_absolute_uri` would use it, else the address the sandbox is bound to.
    private func origin(_ request: Request, context: Context) -> String {
        if let linkOrigin { return linkOrigin }
        if let host = request.head.authority, Self.isPlausibleHost(host) {
            return "http://" + host
        }
        let host = bindHost.contains(":") ? "[\(bindHost)]" : bindHost
        return "http://\(host):\(context.localPort ?? 0)"
    }

    /// Host header characters Django's `get_host` would let through (name, IPv4, bracketed IPv6, port).
    static func isPlausibleHost(_ host: String) -> Bool {
        !host.isEmpty && host.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "."), UInt8(ascii: "-"), UInt8(ascii: ":"),
                UInt8(ascii: "["), UInt8(ascii: "]"), UInt8(ascii: "_"):
                true
            default:
                false
            }
        }
    }

    /// Header fields in arrival order; `Host` (moved to `:authority` by the HTTP/1 decoder) first.
    static func headerPairs(_ request: Request) -> [[String]] {
        var pairs: [[String]] = []
        pairs.reserveCapacity(request.headers.count + 1)
        if let authority = request.head.authority {
            pairs.append(["Host", authority])
        }
        for field in request.headers {
            pairs.append([field.name.rawName, field.value])
        }
        return pairs
    }
}
