/// Test controls, the same as the HTTP ones under `/sandbox/`, for tests holding the server in-process.
extension SandboxServer {
    /// Blacklists every token issued so far (access and refresh): the next use of any of them gets 401, as after
    /// a password change or a server-side logout. Returns how many unexpired tokens were revoked.
    @discardableResult
    public func revokeTokens() async -> Int {
        await state.sessions.revokeAll()
    }

    /// Makes the next `count` logins fail with `status` (401: bad credentials; 429: throttled, with
    /// `Retry-After: 1`; 500: Django's error page; any other 4xx/5xx: a `detail` body), whatever credentials they
    /// carry. `count` 0 cancels pending failures.
    public func failLogins(_ count: Int, status: Int = 401) async throws {
        try await state.failLogins(count: count, status: status)
    }

    /// Sets the lifetime of access tokens issued from now on; tokens already issued keep their `exp`.
    public func setAccessLifetime(_ lifetime: Duration) async throws {
        try await state.setAccessLifetime(lifetime)
    }

    /// Counts of logins, refreshes, JWT refusals and requests per route since start (or the last reset).
    public func counters() async -> SandboxCounters {
        await state.counters.snapshot()
    }

    /// Zeroes the counters.
    public func resetCounters() async {
        await state.counters.reset()
    }

    /// The SSN stored for a profile (nine digits), as the plaintext route would answer it; nil when none.
    public func storedSSN(profileID: String) async -> String? {
        await state.ssn.get(profileID)
    }
}
