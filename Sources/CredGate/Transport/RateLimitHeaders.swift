import NIOHTTP1

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// A platform's rate-limit answer made readable by any client: WriftAI (and GitHub, and others) say when to try
/// again in `x-ratelimit-reset`, which curl `--retry`, browsers and generic HTTP clients do not know; the
/// standard `Retry-After` (RFC 9110, 10.2.3) they do. credgate adds it to a 429 or 503 that has the first and not
/// the second, and leaves the platform's own headers as they are.
enum RateLimitHeaders {
    /// Values at or above this are epoch seconds (2001-09-09); smaller ones are taken as seconds from now, as some
    /// platforms send.
    static let epochThreshold: Int64 = 1_000_000_000

    /// Adds `Retry-After` when the answer is a 429 or 503 with `x-ratelimit-reset` and no `Retry-After`.
    static func addRetryAfter(status: HTTPResponseStatus, headers: inout HTTPHeaders, now: () -> Int64 = Self.epochNow)
    {
        guard status.code == 429 || status.code == 503, !headers.contains(name: "retry-after"),
            let reset = headers.first(name: "x-ratelimit-reset"),
            let seconds = retryAfterSeconds(reset: reset, now: now())
        else { return }
        headers.add(name: "retry-after", value: String(seconds))
    }

    /// Whole seconds to wait for an `x-ratelimit-reset` value (epoch seconds, or seconds from now; fractions are
    /// rounded up); nil when it is not a number. A reset already past gives 0.
    static func retryAfterSeconds(reset: String, now: Int64) -> Int64? {
        let text = reset.filter { $0 != " " && $0 != "\t" }
        guard let value = Double(text), value.isFinite, value >= 0, value < 1e15 else { return nil }
        let whole = Int64(value.rounded(.up))
        if whole >= epochThreshold { return max(0, whole - now) }
        return whole
    }

    /// The current time in seconds since 1970 (only read on a rate-limited answer).
    static func epochNow() -> Int64 { Int64(time(nil)) }
}
