import Hummingbird

/// Everything a sandbox shares between its responder and its ``SandboxServer`` handle.
final class SandboxState: Sendable {
    let sessions: SessionAuthority
    let counters = CounterBook()
    let ssn = SSNStore()
    let documents = ProviderDocumentStore()

    init(options: SandboxOptions) {
        sessions = SessionAuthority(
            users: options.users,
            accessLifetime: options.accessLifetime,
            refreshLifetime: options.refreshLifetime
        )
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
            guard let seconds = Double(raw.trimmingASCIIWhitespace()), seconds.isFinite, seconds > 0, seconds < 1e9 else {
                return JSONResponses.fieldError(.badRequest, field: "seconds", "A positive number of seconds is required.")
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
        case (_, "/sandbox/revoke-tokens"), (_, "/sandbox/fail-logins"), (_, "/sandbox/access-lifetime"):
            return JSONResponses.methodNotAllowed(request.method, allowed: ["POST"])
        default:
            return JSONResponses.detail(.notFound, "Not found.")
        }
    }
}
