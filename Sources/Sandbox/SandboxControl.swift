import Hummingbird

/// Everything a sandbox shares between its responder and its ``SandboxServer`` handle.
final class SandboxState: Sendable {
    let sessions: SessionAuthority
    let counters = CounterBook()
    let ssn = SSNStore()
    let documents = ProviderDocumentStore()
    /// Uploaded files, served to presigned URLs.
    let objects = ObjectStore()
    /// The bucket uploads go to.
    let bucket: String
    let presigner: Presigner
    let presign: PresignSettings
    let presignFailures = InjectedFailures()
    let documentFailures = InjectedFailures()

    init(options: SandboxOptions) {
        sessions = SessionAuthority(
            users: options.users,
            accessLifetime: options.accessLifetime,
            refreshLifetime: options.refreshLifetime
        )
        bucket = options.bucket
        presigner = Presigner(accessKeyID: options.presignAccessKeyID)
        // Whole seconds, as the URL carries them; an out-of-range option is brought into S3's range.
        let lifetime = Int(options.presignLifetime.components.seconds)
        presign = PresignSettings(
            .init(lifetime: min(max(lifetime, 1), Presigner.maximumLifetime), form: options.presignForm))
    }
}

/// Why a test control was refused.
public enum SandboxControlError: Error, CustomStringConvertible {
    case invalid(String)

    public var description: String {
        switch self {
        case .invalid(let message): message
        }
    }
}

extension SandboxState {
    /// Shared by the HTTP control routes and the Swift methods, so both validate alike.
    func failLogins(count: Int, status: Int) async throws(SandboxControlError) {
        guard count >= 0 else { throw .invalid("count must be 0 or more") }
        guard (400...599).contains(status) else { throw .invalid("status must be between 400 and 599") }
        await sessions.failLogins(count: count, status: status)
    }

    func setAccessLifetime(_ lifetime: Duration) async throws(SandboxControlError) {
        guard lifetime > .zero else { throw .invalid("the lifetime must be positive") }
        await sessions.setAccessLifetime(lifetime)
    }

    func failPresigns(count: Int, status: Int) async throws(SandboxControlError) {
        try Self.checkFailure(count: count, status: status)
        await presignFailures.set(count: count, status: status)
    }

    func failProviderDocuments(count: Int, status: Int) async throws(SandboxControlError) {
        try Self.checkFailure(count: count, status: status)
        await documentFailures.set(count: count, status: status)
    }

    private static func checkFailure(count: Int, status: Int) throws(SandboxControlError) {
        guard count >= 0 else { throw .invalid("count must be 0 or more") }
        guard (400...599).contains(status) else { throw .invalid("status must be between 400 and 599") }
    }

    /// Changes what is given (nil keeps it): lifetime in whole seconds (1 to 604800, S3's limit), the form, and a
    /// delay before each presign answer (0 to 60 s).
    func setPresign(lifetime: Int?, form: PresignForm?, delay: Duration?) async throws(SandboxControlError)
        -> PresignSettings.Values
    {
        if let lifetime, !(1...Presigner.maximumLifetime).contains(lifetime) {
            throw .invalid("lifetime_seconds must be between 1 and \(Presigner.maximumLifetime)")
        }
        if let delay, delay < .zero || delay > .seconds(60) {
            throw .invalid("delay_ms must be between 0 and 60000")
        }
        return await presign.update(lifetime: lifetime, form: form, delay: delay)
    }
}

extension SandboxResponder {
    // MARK: Control routes (no key, not recorded, not counted)

    func control(_ request: Request, target: RequestTarget) async throws -> Response {
        let query = target.parameters
        func value(_ name: String) -> String? { query.last { $0.name == name }?.value }

        switch (request.method, target.path) {
        case (.get, "/sandbox/requests"), (.head, "/sandbox/requests"):
            return try JSONResponses.encoded(.ok, await recorder.all())
        case (.delete, "/sandbox/requests"):
            await recorder.reset()
            return JSONResponses.noContent()
        case (.get, "/sandbox/healthz"), (.head, "/sandbox/healthz"):
            return JSONResponses.json(.ok, .object([("status", "ok")]))

        case (.get, "/sandbox/counters"), (.head, "/sandbox/counters"):
            return try JSONResponses.encoded(.ok, await state.counters.snapshot())
        case (.delete, "/sandbox/counters"):
            await state.counters.reset()
            return JSONResponses.noContent()

        case (.post, "/sandbox/revoke-tokens"):
            let revoked = await state.sessions.revokeAll()
            return JSONResponses.json(.ok, .object([("revoked", .int(revoked))]))

        case (.post, "/sandbox/fail-logins"):
            // count defaults to 1 and status to 401: "fail the next login" needs no parameters.
            guard let count = value("count").map(LimitOffsetPage.positiveInt) ?? 1 else {
                return JSONResponses.fieldError(.badRequest, field: "count", "A valid integer is required.")
            }
            guard let status = value("status").map(LimitOffsetPage.positiveInt) ?? 401 else {
                return JSONResponses.fieldError(.badRequest, field: "status", "A valid integer is required.")
            }
            do throws(SandboxControlError) {
                try await state.failLogins(count: count, status: status)
            } catch {
                return JSONResponses.fieldError(.badRequest, field: "status", error.description)
            }
            return JSONResponses.json(.ok, .object([("count", .int(count)), ("status", .int(status))]))

        case (.post, "/sandbox/access-lifetime"):
            guard let raw = value("seconds") else {
                return JSONResponses.fieldError(.badRequest, field: "seconds", "This field is required.")
            }
            guard let seconds = Double(raw.trimmingASCIIWhitespace()), seconds.isFinite, seconds > 0, seconds < 1e9
            else {
                return JSONResponses.fieldError(
                    .badRequest, field: "seconds", "A positive number of seconds is required.")
            }
            do throws(SandboxControlError) {
                try await state.setAccessLifetime(.milliseconds(Int64((seconds * 1000).rounded())))
            } catch {
                return JSONResponses.fieldError(.badRequest, field: "seconds", error.description)
            }
            return try JSONResponses.encoded(.ok, ["access_lifetime_seconds": seconds])

        case (_, "/sandbox/requests"):
            return JSONResponses.methodNotAllowed(request.method, allowed: ["GET", "HEAD", "DELETE"])
        case (_, "/sandbox/counters"):
            return JSONResponses.methodNotAllowed(request.method, allowed: ["GET", "HEAD", "DELETE"])
        case (.get, "/sandbox/presign"), (.head, "/sandbox/presign"):
            return Self.presignSettingsAnswer(await state.presign.values)
        case (.post, "/sandbox/presign"):
            return try await presignControl(request, target: target)
        case (.post, "/sandbox/fail-presigns"):
            return try await failureControl(request, target: target, set: state.failPresigns)
        case (.post, "/sandbox/fail-provider-documents"):
            return try await failureControl(request, target: target, set: state.failProviderDocuments)

        case (_, "/sandbox/revoke-tokens"), (_, "/sandbox/fail-logins"), (_, "/sandbox/access-lifetime"),
            (_, "/sandbox/fail-presigns"), (_, "/sandbox/fail-provider-documents"):
            return JSONResponses.methodNotAllowed(request.method, allowed: ["POST"])
        case (_, "/sandbox/presign"):
            return JSONResponses.methodNotAllowed(request.method, allowed: ["GET", "HEAD", "POST"])
        default:
            return JSONResponses.detail(.notFound, "Not found.")
        }
    }
}

extension SandboxResponder {
    // MARK: Presign and failure controls

    /// `POST /sandbox/presign` `{"lifetime_seconds"?, "form"? ("v4" | "v2"), "delay_ms"?}`: each given setting
    /// changes, the others stay. Answers the settings now in force.
    func presignControl(_ request: Request, target: RequestTarget) async throws -> Response {
        let fields: [String: RequestJSON]
        switch try await Self.controlFields(request, target: target) {
        case .success(let value): fields = value
        case .failure(let error): return error.response
        }
        var lifetime: Int?
        var delay: Duration?
        var form: PresignForm?
        if let raw = fields["lifetime_seconds"] {
            guard let value = Self.integer(raw) else {
                return JSONResponses.fieldError(.badRequest, field: "lifetime_seconds", "A valid integer is required.")
            }
            lifetime = value
        }
        if let raw = fields["delay_ms"] {
            guard let value = Self.integer(raw) else {
                return JSONResponses.fieldError(.badRequest, field: "delay_ms", "A valid integer is required.")
            }
            delay = .milliseconds(value)
        }
        if let raw = fields["form"] {
            guard case .string(let text) = raw, let value = PresignForm(rawValue: text) else {
                return JSONResponses.fieldError(.badRequest, field: "form", "\"v4\" or \"v2\" is required.")
            }
            form = value
        }
        do throws(SandboxControlError) {
            return Self.presignSettingsAnswer(try await state.setPresign(lifetime: lifetime, form: form, delay: delay))
        } catch {
            return JSONResponses.detail(.badRequest, error.description)
        }
    }

    static func presignSettingsAnswer(_ values: PresignSettings.Values) -> Response {
        let delay = values.delay.components
        return JSONResponses.json(
            .ok,
            .object([
                ("lifetime_seconds", .int(values.lifetime)),
                ("form", .string(values.form.rawValue)),
                ("delay_ms", .int(Int(delay.seconds) * 1000 + Int(delay.attoseconds / 1_000_000_000_000_000))),
            ]))
    }

    /// `POST /sandbox/fail-presigns`, `/sandbox/fail-provider-documents` `{"count"?: 1, "status"?: 500}`: the next
    /// `count` calls answer `status` with a `detail` body; count 0 cancels.
    func failureControl(
        _ request: Request, target: RequestTarget, set: (Int, Int) async throws(SandboxControlError) -> Void
    ) async throws -> Response {
        let fields: [String: RequestJSON]
        switch try await Self.controlFields(request, target: target) {
        case .success(let value): fields = value
        case .failure(let error): return error.response
        }
        guard let count = fields["count"].map(Self.integer) ?? 1 else {
            return JSONResponses.fieldError(.badRequest, field: "count", "A valid integer is required.")
        }
        guard let status = fields["status"].map(Self.integer) ?? 500 else {
            return JSONResponses.fieldError(.badRequest, field: "status", "A valid integer is required.")
        }
        do throws(SandboxControlError) {
            try await set(count, status)
        } catch {
            return JSONResponses.fieldError(.badRequest, field: "status", error.description)
        }
        return JSONResponses.json(.ok, .object([("count", .int(count)), ("status", .int(status))]))
    }

    /// A control's parameters: the JSON body's members, and query parameters for names the body does not have
    /// (so `?count=2` works as on the older controls).
    static func controlFields(_ request: Request, target: RequestTarget) async throws -> Result<
        [String: RequestJSON], ResponseError
    > {
        var scratch = RecordedRequest(method: request.method.rawValue, uri: "", headers: [])
        var fields: [String: RequestJSON]
        switch try await ReadBody.read(request, recorded: &scratch).jsonObject() {
        case .success(let object): fields = object
        case .failure(let error): return .failure(error)
        }
        for parameter in target.parameters where fields[parameter.name] == nil {
            fields[parameter.name] = .string(parameter.value)
        }
        return .success(fields)
    }

    /// A non-negative whole number, from JSON or from query text.
    static func integer(_ value: RequestJSON) -> Int? {
        switch value {
        case .number(let n): n >= 0 && n.rounded() == n && n < 1e15 ? Int(n) : nil
        case .string(let s): LimitOffsetPage.positiveInt(s)
        default: nil
        }
    }
}
