import Foundation
import NIOConcurrencyHelpers

/// Presign answers kept until shortly before their URLs expire, so that asking again for the same file, as SDKs
/// do before every download, costs no platform call.
///
/// - An answer is stored only when it is a 200 whose `presigned_url` has an expiry that can be read
///   (``PresignedURLExpiry``), and served only until the safety margin before it (``PresignServingWindow``).
///   Errors and unreadable URLs are passed on and never stored.
/// - Concurrent identical requests share one platform call (single flight), and each gets that call's answer or
///   error; the next request after it asks again unless the answer was stored.
/// - At most ``Configuration-swift.struct/capacity`` entries, the least recently used going first.
///
/// A final class with a lock rather than an actor: a hit is the common case and is answered by the synchronous
/// ``lookup(key:)`` on the connection's event loop, with a lock held for a dictionary lookup and no hop to an
/// actor's executor or `Task` (the data-path rule of ARCHITECTURE.md, and the pattern of ``JWTSession``). Only a
/// miss awaits, in ``value(for:fetch:)``.
///
/// Time is wall-clock (`Date`), injected for tests: a URL's expiry is an instant on S3's clock, so the question is
/// always "what time is it", never "how long have we been running".
final class PresignCache: Sendable {
    /// Limits, from the route's configuration.
    struct Configuration: Sendable, Hashable {
        /// Most entries kept (0 disables storing; single flight still applies).
        var capacity: Int
        /// Ceiling on the lifetime relied on, counted from receipt, whatever the URL says: boto3's default
        /// lifetime, so ordinary URLs are not shortened while week-long ones are fetched again hourly, which bounds
        /// how long a URL signed with since-rotated credentials keeps being handed out.
        var maximumLifetime: TimeInterval
        /// Lower ceiling for URLs signed with temporary credentials (a security token is present): those stop
        /// working when the credentials expire, which the URL does not say. botocore renews credentials 10 to 15
        /// minutes before they expire, so a freshly signed URL is good for at least about 10 minutes. Nil: no
        /// separate ceiling.
        var temporaryCredentialsMaximumLifetime: TimeInterval?
        /// Larger answers are passed on but not stored (a real one is under 2 KiB), bounding memory at about
        /// `capacity` times this.
        var maximumBodyBytes: Int

        init(
            capacity: Int = 10_000, maximumLifetime: TimeInterval = 3_600,
            temporaryCredentialsMaximumLifetime: TimeInterval? = 600, maximumBodyBytes: Int = 16_384
        ) {
            self.capacity = capacity
            self.maximumLifetime = maximumLifetime
            self.temporaryCredentialsMaximumLifetime = temporaryCredentialsMaximumLifetime
            self.maximumBodyBytes = maximumBodyBytes
        }
    }

    /// Counters since start, for metrics and the status page.
    struct Statistics: Sendable, Hashable {
        /// Requests answered from the cache.
        var hits = 0
        /// Requests that found nothing usable and fetched or joined a fetch (counted by ``value(for:fetch:)``).
        var misses = 0
        /// Platform calls made.
        var fetches = 0
        /// Requests that waited for another request's platform call instead of making their own.
        var joined = 0
        /// Answers stored.
        var stored = 0
        /// Entries dropped to make room.
        var evictions = 0

        init() {}
    }

    /// What the platform answered: its status and body.

    let configuration: Configuration
    private let clock: @Sendable () -> Date
    private let state: NIOLockedValueBox<State>

    private struct Entry: Sendable {
        var body: [UInt8]
        var presignedURL: String
        var receivedAt: Date
        var expiresAt: Date
        var serveUntil: Date
    }

    private struct State: Sendable {
        var entries: LRUTable<PresignCacheKey, Entry>
        /// The platform call in progress per key. A call started before ``removeAll()`` is no longer here: it
        /// still answers the requests waiting for it, but neither stores its answer nor removes a newer call.
        var flights: [PresignCacheKey: PresignCacheFlight] = [:]
        var nextFlightID: UInt64 = 0
        var statistics = Statistics()
    }

    /// `now` is the wall clock (tests inject a fixed one, so nothing sleeps).
    init(configuration: Configuration = Configuration(), now: @escaping @Sendable () -> Date = { Date() }) {
        self.configuration = configuration
        self.clock = now
        self.state = NIOLockedValueBox(State(entries: LRUTable(capacity: configuration.capacity)))
    }

    // MARK: - Reading

    /// The cached answer for `key` if it may still be served now. Never waits beyond a short lock and does no I/O:
    /// safe on an event loop.
    func lookup(key: PresignCacheKey) -> PresignCacheHit? {
        lookup(key: key, now: clock())
    }

    /// The cached answer for `key` if it may still be served at `now`; an entry past its window is dropped.
    func lookup(key: PresignCacheKey, now: Date) -> PresignCacheHit? {
        state.withLockedValue { s in
            // A miss is counted by the claim that follows it, so it is not counted twice.
            let hit = Self.hit(&s, key, now)
            if hit != nil { s.statistics.hits += 1 }
            return hit
        }
    }

    /// The data path's way in (no `Task`, no `await`): a hit; or the caller is to make the platform call itself and
    /// report its answer through the ticket (``PresignCacheTicket``); or another request's call is in progress and
    /// `whenJoinedCallCompletes` will be called with its result (``PresignCacheError/abandoned`` when that request
    /// went away without an answer: claim again).
    func claim(
        key: PresignCacheKey,
        whenJoinedCallCompletes: @escaping @Sendable (Result<PresignCacheFetched, any Error>) -> Void
    ) -> PresignCacheClaim {
        let now = clock()
        return state.withLockedValue { s in
            if let hit = Self.hit(&s, key, now) {
                s.statistics.hits += 1
                return .hit(hit)
            }
            s.statistics.misses += 1
            // Joined under the cache's lock: the flight cannot finish (that takes the lock) before the waiter is in.
            if let flight = s.flights[key], flight.join(whenJoinedCallCompletes) {
                s.statistics.joined += 1
                return .joined
            }
            s.nextFlightID += 1
            let flight = PresignCacheFlight(id: s.nextFlightID)
            s.flights[key] = flight
            s.statistics.fetches += 1
            return .lead(PresignCacheTicket(cache: self, key: key, flight: flight))
        }
    }

    // MARK: - Housekeeping

    /// Entries held, including any past their window not yet looked at again.
    var count: Int { state.withLockedValue { $0.entries.count } }

    /// Forgets every entry (`DELETE /credgate/v1/cache/presign`). Platform calls already in progress still answer
    /// their callers but store nothing, and later callers start a call of their own.
    func removeAll() {
        state.withLockedValue { s in
            s.entries.removeAll()
            s.flights.removeAll()
        }
    }

    var statistics: Statistics { state.withLockedValue { $0.statistics } }

    /// The keys from most to least recently used, for tests.
    var keysByRecency: [PresignCacheKey] { state.withLockedValue { $0.entries.keysByRecency } }

    // MARK: - Internals

    private static func hit(_ s: inout State, _ key: PresignCacheKey, _ now: Date) -> PresignCacheHit? {
        guard let entry = s.entries.value(forKey: key) else { return nil }
        guard now < entry.serveUntil else {
            s.entries.removeValue(forKey: key)
            return nil
        }
        // A wall clock set back must not make an entry look younger than new or good for longer than its window.
        let window = entry.serveUntil.timeIntervalSince(entry.receivedAt)
        let age = max(0, now.timeIntervalSince(entry.receivedAt))
        let left = min(window, entry.serveUntil.timeIntervalSince(now))
        return PresignCacheHit(
            body: entry.body, presignedURL: entry.presignedURL, age: Int(age.rounded(.down)),
            secondsLeft: Int(left.rounded(.down)), expiresAt: entry.expiresAt)
    }

    /// The leader's answer for `key`: decide whether to store it, retire the flight, and tell the waiters.
    fileprivate func complete(_ flight: PresignCacheFlight, key: PresignCacheKey, status: Int, body: [UInt8])
        -> PresignCacheFetched
    {
        let receivedAt = clock()
        let url = status == 200 ? Self.presignedURL(in: body) : nil
        var entry: Entry?
        if let url, body.count <= configuration.maximumBodyBytes,
            let expiresAt = PresignedURLExpiry.expiry(
                of: url, receivedAt: receivedAt, maximumLifetime: configuration.maximumLifetime,
                temporaryCredentialsMaximumLifetime: configuration.temporaryCredentialsMaximumLifetime),
            let serveUntil = PresignServingWindow.serveUntil(receivedAt: receivedAt, expiresAt: expiresAt)
        {
            entry = Entry(
                body: body, presignedURL: url, receivedAt: receivedAt, expiresAt: expiresAt,
                serveUntil: serveUntil)
        }
        let stored = state.withLockedValue { s -> Bool in
            // A flight that removeAll() forgot stores nothing: its answer may predate the reason for clearing.
            guard s.flights[key] === flight else { return false }
            s.flights[key] = nil
            guard let entry else { return false }
            if let evicted = s.entries.set(entry, forKey: key), evicted.key != key { s.statistics.evictions += 1 }
            let kept = s.entries.peek(key) != nil
            if kept { s.statistics.stored += 1 }
            return kept
        }
        let secondsLeft = stored ? entry.map { Int($0.serveUntil.timeIntervalSince(receivedAt).rounded(.down)) } : nil
        let fetched = PresignCacheFetched(
            status: status, body: body, presignedURL: url, isStored: stored, secondsLeft: secondsLeft)
        flight.finish(.success(fetched))
        return fetched
    }

    /// The leader got no answer: retire the flight; the waiters get the error and nothing is remembered.
    fileprivate func fail(_ flight: PresignCacheFlight, key: PresignCacheKey, error: any Error) {
        state.withLockedValue { s in
            if s.flights[key] === flight { s.flights[key] = nil }
        }
        flight.finish(.failure(error))
    }

    /// The platform's answer is `{"presigned_url": "https://..."}`; anything else has no URL to cache.
    static func presignedURL(in body: [UInt8]) -> String? {
        struct Answer: Decodable {
            var presigned_url: String
        }
        guard let answer = try? JSONDecoder().decode(Answer.self, from: Data(body)),
            !answer.presigned_url.isEmpty
        else { return nil }
        return answer.presigned_url
    }
}

/// Why a request waiting for another's presign call got no answer.
enum PresignCacheError: Error, Sendable {
    /// The request making the call went away (its client disconnected) before it had an answer: claim again.
    case abandoned
}

/// What ``PresignCache/claim(key:whenJoinedCallCompletes:)`` found.
enum PresignCacheClaim: Sendable {
    case hit(PresignCacheHit)
    /// Make the platform call and report it through the ticket.
    case lead(PresignCacheTicket)
    /// Another request's call is in progress; its result comes to the callback.
    case joined
}

/// One platform call in progress, and the requests waiting for its answer.
final class PresignCacheFlight: Sendable {
    typealias Waiter = @Sendable (Result<PresignCacheFetched, any Error>) -> Void
    let id: UInt64
    /// `nil` once finished.
    private let waiters = NIOLockedValueBox<[Waiter]?>([])

    init(id: UInt64) { self.id = id }

    /// Adds a waiter; false when the flight already finished.
    func join(_ waiter: @escaping Waiter) -> Bool {
        waiters.withLockedValue { list in
            guard list != nil else { return false }
            list!.append(waiter)
            return true
        }
    }

    func finish(_ result: Result<PresignCacheFetched, any Error>) {
        let list = waiters.withLockedValue { list -> [Waiter] in
            defer { list = nil }
            return list ?? []
        }
        for waiter in list { waiter(result) }
    }
}

/// The leader's duty: report the platform's answer (or its failure) once. A ticket dropped without a report
/// (the leading request went away) releases the waiters with ``PresignCacheError/abandoned``.
final class PresignCacheTicket: Sendable {
    private let cache: PresignCache
    private let key: PresignCacheKey
    private let flight: PresignCacheFlight
    private let reported = NIOLockedValueBox(false)

    fileprivate init(cache: PresignCache, key: PresignCacheKey, flight: PresignCacheFlight) {
        self.cache = cache
        self.key = key
        self.flight = flight
    }

    /// Reports the platform's answer; returns what became of it. Only the first report counts.
    @discardableResult
    func complete(status: Int, body: [UInt8]) -> PresignCacheFetched {
        guard markReported() else {
            return PresignCacheFetched(status: status, body: body, presignedURL: nil, isStored: false, secondsLeft: nil)
        }
        return cache.complete(flight, key: key, status: status, body: body)
    }

    /// Reports that no answer came.
    func fail(_ error: any Error) {
        guard markReported() else { return }
        cache.fail(flight, key: key, error: error)
    }

    private func markReported() -> Bool {
        reported.withLockedValue { done in
            defer { done = true }
            return !done
        }
    }

    deinit {
        if markReported() { cache.fail(flight, key: key, error: PresignCacheError.abandoned) }
    }
}
