import Foundation
import Hummingbird
import Logging

/// The WriftAI sandbox's single responder: the bearer check, injected 429s, then the route.
///
/// Like ``SandboxResponder`` it dispatches on the raw request target rather than through Hummingbird's `Router`,
/// so the recorder and the counters see exactly the bytes a gateway forwarded.
struct WriftAIResponder: HTTPResponder {
    typealias Context = SandboxRequestContext

    let state: WriftAIState
    let recorder: RequestRecorder
    let bindHost: String
    let logger: Logger

    func respond(to request: Request, context: Context) async throws -> Response {
        let response = try await route(request, context: context)
        // Method, path and status only: headers (the token) and queries are never logged.
        logger.debug("\(request.method) \(RequestTarget(request.head.path ?? "").path) -> \(response.status.code)")
        return request.method == .head ? response.createHeadResponse() : response
    }

    private func route(_ request: Request, context: Context) async throws -> Response {
        let rawTarget = request.head.path ?? ""
        let target = RequestTarget(rawTarget)
        if target.path.hasPrefix("/sandbox/") {
            return try await control(request, target: target)
        }
        let route = WriftAIRoute(path: target.path)
        await state.counters.count(route: "\(request.method.rawValue) \(route.template ?? target.path)")
        // Recorded once, after the handler has read (or declined to read) the body; also when reading it failed.
        var recorded = RecordedRequest(
            method: request.method.rawValue, uri: rawTarget, headers: SandboxResponder.headerPairs(request))
        do {
            let response = try await dispatch(
                request, target: target, route: route, context: context, recorded: &recorded)
            await recorder.record(recorded)
            return response
        } catch {
            await recorder.record(recorded)
            throw error
        }
    }

    private func dispatch(
        _ request: Request, target: RequestTarget, route: WriftAIRoute, context: Context,
        recorded: inout RecordedRequest
    ) async throws -> Response {
        let now = Int(Date().timeIntervalSince1970)
        // The storage behind presigned URLs: no bearer token, the signature is the credential. Only 429 rules
        // naming its path apply to it.
        if case .storage = route {
            if let reset = await state.rateLimits.take(
                path: target.path, template: route.template, isAPI: false, now: now)
            {
                await state.counters.count(\.rateLimited)
                return WriftAIProblem.rateLimited(reset: reset)
            }
            return try await storage(request, target: target, recorded: &recorded)
        }
        guard target.path.hasPrefix(WriftAIRoute.apiPrefix + "/") else {
            return WriftAIProblem.notFound()
        }
        if let refusal = authenticate(request) {
            await state.counters.count(\.unauthorized)
            return refusal
        }
        if let reset = await state.rateLimits.take(path: target.path, template: route.template, isAPI: true, now: now) {
            await state.counters.count(\.rateLimited)
            return WriftAIProblem.rateLimited(reset: reset)
        }
        let method = request.method == .head ? .get : request.method
        switch (method, route) {
        case (.get, .user):
            return JSONResponses.json(.ok, state.catalogue.user)
        case (.get, .models):
            return await page(state.catalogue.models.map(\.json), request: request, target: target, context: context)
        case (.get, .modelsByOwner(let owner)):
            return await page(
                state.catalogue.models.filter { $0.owner == owner }.map(\.json), request: request, target: target,
                context: context)
        case (.get, .model(let owner, let name)):
            guard let model = state.catalogue.model(owner: owner, name: name) else {
                return WriftAIProblem.notFound("Model not found.")
            }
            return JSONResponses.json(.ok, model.detailJSON)
        case (.get, .hardware):
            return await page(state.catalogue.hardware, request: request, target: target, context: context)
        case (.get, .predictions):
            return await listPredictions(request, target: target, context: context)
        case (.post, .predictions):
            return try await createPrediction(request, recorded: &recorded)
        case (.get, .prediction(let id)):
            guard let prediction = await state.predictions.get(id) else {
                return WriftAIProblem.notFound("Prediction not found.")
            }
            return JSONResponses.json(.ok, prediction.details(now: Date().timeIntervalSince1970))
        case (.post, .predictionCancel(let id)):
            guard let prediction = await state.predictions.cancel(id, now: Date().timeIntervalSince1970) else {
                return WriftAIProblem.notFound("Prediction not found.")
            }
            return JSONResponses.json(.ok, prediction.details(now: Date().timeIntervalSince1970))
        case (.get, .predictionStream(let id)):
            return await streamPrediction(request, id: id, target: target)
        case (.post, .uploads):
            return try await createUpload(request, context: context, recorded: &recorded)
        case (.post, .uploadComplete(let id)):
            return try await completeUpload(request, id: id, context: context, recorded: &recorded)
        case (.post, .fileURLs):
            return try await createFileURLs(request, context: context, recorded: &recorded)
        case (_, .other), (_, .storage):
            return WriftAIProblem.notFound()
        case (_, .predictions), (_, .uploads), (_, .predictionCancel), (_, .uploadComplete), (_, .fileURLs):
            return WriftAIProblem.methodNotAllowed(request.method, allowed: Self.allowed(route))
        default:
            return WriftAIProblem.methodNotAllowed(request.method, allowed: Self.allowed(route))
        }
    }

    private static func allowed(_ route: WriftAIRoute) -> [String] {
        switch route {
        case .predictions: ["GET", "POST"]
        case .uploads, .predictionCancel, .uploadComplete, .fileURLs: ["POST"]
        default: ["GET", "HEAD"]
        }
    }

    // MARK: Helpers

    /// Nil when the one `Authorization` field is `Bearer <the token>`; else the 401 to answer (the body unread).
    private func authenticate(_ request: Request) -> Response? {
        let values = request.headers[values: .authorization]
        guard !values.isEmpty else {
            return WriftAIProblem.unauthorized("Authentication credentials were not provided.")
        }
        guard values.count == 1, let space = values[0].firstIndex(of: " "),
            values[0][..<space].lowercased() == "bearer",
            state.isValid(token: values[0][values[0].index(after: space)...].drop(while: { $0 == " " }))
        else {
            return WriftAIProblem.unauthorized("Invalid access token.")
        }
        return nil
    }

    /// One cursor page of `items`, with absolute page links when they are on (SDK 0.28's shape).
    func page(_ items: [JSONValue], request: Request, target: RequestTarget, context: Context) async -> Response {
        let linkBase = await state.settings.values.pageURLs ? origin(request, context: context) + target.path : nil
        switch CursorPage.parse(target.parameters) {
        case .success(let page): return JSONResponses.json(.ok, page.answer(items, linkBase: linkBase))
        case .failure(let error): return error.response
        }
    }

    /// `http://<Host>` as the request named the API (so links name what the client called), else the bound address.
    func origin(_ request: Request, context: Context) -> String {
        if let host = request.head.authority, SandboxResponder.isPlausibleHost(host) { return "http://" + host }
        return storageOrigin(context)
    }

    /// `http://<bound host>:<port>`: presigned URLs name the sandbox itself, never the `Host` a request came with,
    /// so that through a gateway they still go straight to the storage, as a platform's storage host would.
    func storageOrigin(_ context: Context) -> String {
        SandboxServer.baseURL(host: bindHost, port: context.localPort ?? 0)
    }

    /// The body as a JSON object, or the problem to answer (400 not JSON or not an object, 413 too large).
    static func readObject(_ request: Request, recorded: inout RecordedRequest) async throws -> Result<
        [String: RequestJSON], ResponseError
    > {
        let body = try await ReadBody.read(request, recorded: &recorded)
        if body.truncated {
            return .failure(ResponseError(WriftAIProblem.response(.contentTooLarge, "Request body too large.")))
        }
        guard let value = try? JSONDecoder().decode(RequestJSON.self, from: Data(body.bytes)) else {
            return .failure(ResponseError(WriftAIProblem.response(.badRequest, "The body is not valid JSON.")))
        }
        guard case .object(let object) = value else {
            return .failure(ResponseError(WriftAIProblem.response(.badRequest, "The body must be a JSON object.")))
        }
        return .success(object)
    }

    /// A whole number of at least 0 from a JSON number.
    static func wholeNumber(_ value: RequestJSON?) -> Int? {
        guard case .number(let n) = value, n >= 0, n.rounded() == n, n < 1e15 else { return nil }
        return Int(n)
    }
}

extension RequestJSON {
    /// The same value as the sandbox writes JSON (object keys sorted: the decoder kept no order).
    var jsonValue: JSONValue {
        switch self {
        case .string(let s): .string(s)
        case .number(let n): n.rounded() == n && abs(n) < 1e15 ? .int(Int(n)) : .double(n)
        case .bool(let b): .bool(b)
        case .null: .null
        case .array(let items): .array(items.map(\.jsonValue))
        case .object(let members): .object(members.sorted { $0.key < $1.key }.map { ($0.key, $0.value.jsonValue) })
        }
    }
}
