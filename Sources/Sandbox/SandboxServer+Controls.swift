#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Test controls, the same as the HTTP ones under `/sandbox/`, for tests holding the server in-process.
extension SandboxServer {
    /// Blacklists every token issued so far (access and refresh): the next use of any of them gets 401, as after
    /// a password change or a server-side logout. Returns how many unexpired tokens were revoked.
    @discardableResult
    public func revokeTokens() async -> Int {
        await state.sessions.revokeAll()
    }

    /// Every access and refresh token issued so far (the most recent 1,024), oldest first: what a test searches
    /// logs and answers for.
    public func issuedTokens() async -> [String] {
        await state.sessions.issued
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

    // MARK: Files and presigning

    /// The bucket uploads are stored in (``SandboxOptions/bucket``).
    public var bucket: String { state.bucket }

    /// The bytes stored under `key` (in the sandbox's bucket unless told otherwise); nil when there are none.
    public func storedObject(bucket: String? = nil, key: String) async -> [UInt8]? {
        await state.objects.get(bucket: bucket ?? state.bucket, key: key).map { Array($0.bytes.readableBytesView) }
    }

    /// Keys stored in `bucket` (the sandbox's unless told otherwise), oldest first.
    public func storedObjectKeys(bucket: String? = nil) async -> [String] {
        await state.objects.keys(bucket: bucket ?? state.bucket)
    }

    /// A presigned URL of `s3URL` (`s3://bucket/key`) on ``baseURL``, as the presign route would answer it with the
    /// current settings; nil when `s3URL` is not an `s3://` URL. Not counted, delayed or failed.
    public func presignedURL(for s3URL: String) async -> String? {
        guard let (bucket, key) = SandboxResponder.s3Location(s3URL) else { return nil }
        let settings = await state.presign.values
        return state.presigner.url(
            origin: baseURL, bucket: bucket, key: key, form: settings.form,
            lifetime: settings.lifetime, now: Int(Date().timeIntervalSince1970))
    }

    /// Changes how presigned URLs are made from now on; nil keeps a setting. `lifetime` is taken in whole seconds
    /// (1 s to 7 days); `delay` (0 to 60 s) holds every presign answer that long, so concurrent calls overlap.
    public func setPresign(lifetime: Duration? = nil, form: PresignForm? = nil, delay: Duration? = nil) async throws {
        _ = try await state.setPresign(lifetime: lifetime.map { Int($0.components.seconds) }, form: form, delay: delay)
    }

    /// Makes the next `count` presign calls answer `status` with a DRF `detail` body (after the key and JWT checks,
    /// and after any delay). `count` 0 cancels pending failures.
    public func failPresigns(_ count: Int, status: Int = 500) async throws {
        try await state.failPresigns(count: count, status: status)
    }

    /// Makes the next `count` provider-document POSTs answer `status` with a DRF `detail` body, storing nothing.
    public func failProviderDocuments(_ count: Int, status: Int = 500) async throws {
        try await state.failProviderDocuments(count: count, status: status)
    }
}
