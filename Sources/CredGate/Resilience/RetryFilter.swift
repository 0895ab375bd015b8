import NIOCore
import NIOHTTP1

/// A route's `retry:`: how often an idempotent request is sent again after a rate limit or an overloaded
/// platform, and how long credgate may wait for that.
struct RetryPolicy: Sendable, Equatable {
    /// Extra tries after the first answer (0: off, the default).
    var attempts: Int = 0
    /// The answer statuses that are retried.
    var statuses: Set<UInt> = [429, 502, 503, 504]
    /// The longest wait honoured: an answer asking for longer (`Retry-After`, `x-ratelimit-reset`) goes to the
    /// client as it is, with its `Retry-After`.
    var maxWait: TimeAmount = .seconds(10)
    /// The wait when the platform says nothing: doubled for each further try, up to `maxWait`.
    var initialBackoff: TimeAmount = .milliseconds(500)

    init() {}

    /// RFC 9110 9.2.2: only these may be sent twice without changing what the first one did. POST and PATCH never
    /// are, whatever the configuration says.
    static func isIdempotent(_ method: HTTPMethod) -> Bool {
        switch method {
        case .GET, .HEAD, .OPTIONS, .PUT, .DELETE, .TRACE: return true
        default: return false
        }
    }

    /// How long to wait before try `attempt + 1` after `head`, or nil when this answer goes to the client.
    /// `now` is the epoch second (for `x-ratelimit-reset`).
    func wait(after head: HTTPResponseHead, method: HTTPMethod, attempt: Int, now: Int64) -> TimeAmount? {
        guard attempts > 0, attempt < attempts, Self.isIdempotent(method),
            statuses.contains(head.status.code)
        else { return nil }
        let backoff = TimeAmount.nanoseconds(
            min(maxWait.nanoseconds, initialBackoff.nanoseconds << Int64(min(attempt, 20))))
        let asked: TimeAmount?
        if let text = head.headers.first(name: "retry-after"), let seconds = Int64(text.filter { $0 != " " }),
            seconds >= 0
        {
            asked = .seconds(seconds)
        } else if let text = head.headers.first(name: "x-ratelimit-reset"),
            let seconds = RateLimitHeaders.retryAfterSeconds(reset: text, now: now)
        {
            asked = .seconds(seconds)
        } else {
            asked = nil
        }
        guard let asked else { return backoff }
        // The platform's date form of Retry-After is not parsed: such an answer is passed on, not guessed at.
        return asked <= maxWait ? max(asked, .milliseconds(1)) : nil
    }
}

/// Sends an idempotent request again after a 429 or 5xx when the route's `retry:` allows it, waiting as the
/// platform asked (`Retry-After`, `x-ratelimit-reset`) or backing off, never longer than `max_wait`. Off by
/// default: a proxy that retries on its own multiplies a client's own retries (the wriftai SDK retries twice).
/// Never for POST or PATCH, so a request that may have done something is never done twice by credgate.
///
/// The transport replays from its kept copy of the body, as for a rejected session token; this filter only
/// decides, and on the next pass holds the request back for the wait.
struct RetryFilter: HeadFilter, ReplayFilter {
    let policy: RetryPolicy
    /// The wait decided on the last answer, consumed by the next pass through ``decodeHead(_:context:)``.
    static let waitKey = ScratchKey<TimeAmount>("retry.wait")

    func decodeHead(_ head: inout HTTPRequestHead, context: FilterContext) -> FilterHeadResult {
        guard let wait = context.scratch[Self.waitKey] else { return .proceed }
        context.scratch[Self.waitKey] = nil
        let eventLoop = context.eventLoop
        return .retryAfter(eventLoop.scheduleTask(in: wait) {}.futureResult)
    }

    func upstreamResponded(_ head: HTTPResponseHead, context: FilterContext) -> UpstreamVerdict {
        guard
            let wait = policy.wait(
                after: head, method: context.clientHead.method, attempt: context.attempt,
                now: RateLimitHeaders.epochNow())
        else { return .forward }
        context.scratch[Self.waitKey] = wait
        return .replay
    }
}
