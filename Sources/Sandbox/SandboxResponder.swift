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
    let state: SandboxState
    let directory: ProviderDirectory
    let bindHost: String
    let linkOrigin: String?
    let maxUploadBytes: Int
    let logger: Logger

    init(options: SandboxOptions, recorder: RequestRecorder, state: SandboxState, logger: Logger) {
        self.apiKey = Array(options.apiKey.utf8)
        self.recorder = recorder
        self.state = state
        self.directory = ProviderDirectory(count: options.providerCount)
        self.bindHost = options.host
        self.linkOrigin = options.linkOrigin
        self.maxUploadBytes = options.maxUploadBytes
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

        let assured = AssuredRoute(path: target.path)
        await state.counters.count(route: "\(request.method.rawValue) \(assured.template ?? target.path)")
        // Every request is recorded once, after its handler has read (or declined to read) the body, and also
        // when reading the body failed.
        var recorded = RecordedRequest(
            method: request.method.rawValue, uri: rawTarget, headers: Self.headerPairs(request))
        do {
            let response = try await dispatch(
                request, target: target, route: assured, context: context, recorded: &recorded)
            await recorder.record(recorded)
            return response
        } catch {
            await recorder.record(recorded)
            throw error
        }
    }

    private func dispatch(
        _ request: Request,
        target: RequestTarget,
        route: AssuredRoute,
        context: Context,
        recorded: inout RecordedRequest
    ) async throws -> Response {
        // The S3 stand-in behind presigned URLs: no API key, the signature is the credential.
        if case .storedObject = route {
            return await signedObject(request, target: target)
        }
        guard target.path.hasPrefix("/api/v1/") else {
            return JSONResponses.detail(.notFound, "Not found.")
        }
        // Django answers HEAD with the GET view; `respond` then drops the body.
        let method = request.method == .head ? .get : request.method

        // Routes whose credentials are not the API key, before the key check that would refuse them.
        switch route {
        case .login:
            return try await login(request, method: method, recorded: &recorded)
        case .tokenRefresh:
            return try await refresh(request, method: method, recorded: &recorded)
        case .tokenVerify:
            return try await verify(request, method: method, recorded: &recorded)
        case .ssnEncrypted(let profileID):
            // Inferred status: production refuses the API key on this route. Any `x-api-key` field, valid,
            // wrong or empty, is refused before the token is even looked at.
            guard Self.apiKeyValues(request).isEmpty else {
                return JSONResponses.detail(.forbidden, "API key authentication is not allowed on this endpoint.")
            }
            return try await ssnEncrypted(request, method: method, profileID: profileID, recorded: &recorded)
        case .ssnPlain(let profileID):
            // The JWT authenticates here; a key may come along, but a wrong one is still refused.
            if !Self.apiKeyValues(request).isEmpty && !hasValidKey(request) {
                return JSONResponses.detail(.unauthorized, "Invalid API key")
            }
            return await ssnPlain(request, method: method, profileID: profileID)
        default:
            break
        }

        guard hasValidKey(request) else {
            // Answer without reading the body; Hummingbird drains it before the next request on the connection.
            return JSONResponses.detail(.unauthorized, "Invalid API key")
        }

        switch (method, route) {
        case (_, .presign):
            // Key and JWT, as production demands.
            let check = await authenticate(request)
            guard case .user = check else { return rejection(check) }
            return try await presign(request, method: method, context: context, recorded: &recorded)

        case (_, .fileHandle):
            let check = await authenticate(request)
            guard case .user = check else { return rejection(check) }
            return try await fileHandle(request, method: method, target: target, context: context, recorded: &recorded)

        case (_, .providerDocuments):
            let check = await authenticate(request)
            guard case .user = check else { return rejection(check) }
            return try await providerDocuments(
                request, method: method, target: target, context: context, recorded: &recorded)

        case (_, .providerDocument(let id)):
            let check = await authenticate(request)
            guard case .user = check else { return rejection(check) }
            return await providerDocument(request, method: method, id: id, context: context)

        case (_, .loggedInUserDetails):
            return await loggedInUserDetails(request, method: method)

        case (.get, .providersList):
            return providersList(request, target: target, context: context)

        case (.delete, .practiceLocationProvider):
            return JSONResponses.noContent()

        case (.get, .download):
            return download(target: target)

        default:
            return try await echo(request, target: target, recorded: &recorded)
        }
    }

    // MARK: Assured routes

    /// `GET /api/v1/users/providers-list/`: DRF limit/offset pagination over the fixed directory.
    private func providersList(_ request: Request, target: RequestTarget, context: Context) -> Response {
        page(directory.providers.map(\.json), request: request, target: target, context: context)
    }

    /// One DRF limit/offset page of `items`, with absolute `next`/`previous` links.
    func page(_ items: [JSONValue], request: Request, target: RequestTarget, context: Context) -> Response {
        let query = target.parameters
        let page = LimitOffsetPage(query: query, count: items.count)
        let base = origin(request, context: context) + target.path
        return JSONResponses.json(
            .ok,
            .object([
                ("count", .int(page.count)),
                ("next", .optional(page.nextLink(base: base, query: query))),
                ("previous", .optional(page.previousLink(base: base, query: query))),
                ("results", .array(Array(page.slice(items)))),
            ]))
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
                try await writer.write(
                    n == chunk.readableBytes ? chunk : chunk.getSlice(at: chunk.readerIndex, length: n)!)
                remaining -= n
            }
            try await writer.finish(nil)
        }
        return Response(status: .ok, headers: [.contentType: "application/octet-stream"], body: body)
    }

    /// Any other request under `/api/v1/`: hash the body as it streams in, then describe what arrived.
    func echo(_ request: Request, target: RequestTarget, recorded: inout RecordedRequest) async throws -> Response {
        var hasher = SHA256()
        var total = 0
        do {
            for try await buffer in request.body {
                total += buffer.readableBytes
                buffer.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
            }
        } catch {
            // The client went away mid-body: keep what was seen, with no digest (the caller records it).
            recorded.bodyBytes = total
            throw error
        }
        let digest = hasher.finalize().hexString
        recorded.bodyBytes = total
        recorded.bodySHA256 = digest
        return JSONResponses.json(
            .ok,
            .object([
                ("method", .string(request.method.rawValue)),
                ("path", .string(target.path)),
                ("query", .optional(target.query)), // null when the target had no `?`
                ("body_bytes", .int(total)),
                ("body_sha256", .string(digest)),
            ]))
    }

    // MARK: Helpers

    /// Every `x-api-key` field, in arrival order. (HTTPTypes' field-name type is not re-exported by Hummingbird,
    /// hence a function rather than a stored name.)
    static func apiKeyValues(_ request: Request) -> [String] {
        request.headers[values: .init("x-api-key")!]
    }

    /// Compares the one `x-api-key` value with the expected key in time independent of where they differ.
    /// Two `x-api-key` fields fail, as Django would see them joined by a comma.
    private func hasValidKey(_ request: Request) -> Bool {
        let values = Self.apiKeyValues(request)
        guard values.count == 1 else { return false }
        let given = Array(values[0].utf8)
        guard given.count == apiKey.count else { return false }
        var difference: UInt8 = 0
        for (a, b) in zip(given, apiKey) { difference |= a ^ b }
        return difference == 0
    }

    /// `scheme://host[:port]` for absolute links: the configured origin, else the request's `Host` as Django's
    /// `build_absolute_uri` would use it, else the address the sandbox is bound to.
    func origin(_ request: Request, context: Context) -> String {
        if let linkOrigin { return linkOrigin }
        if let host = request.head.authority, Self.isPlausibleHost(host) {
            return "http://" + host
        }
        let host = bindHost.contains(":") ? "[\(bindHost)]" : bindHost
        return "http://\(host):\(context.localPort ?? 0)"
    }

    /// Host header characters Django's `get_host` would let through (name, IPv4, bracketed IPv6, port).
    static func isPlausibleHost(_ host: String) -> Bool {
        !host.isEmpty
            && host.utf8.allSatisfy { byte in
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
