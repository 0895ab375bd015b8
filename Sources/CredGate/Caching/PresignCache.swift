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
public final class PresignCache: Sendable {
    /// Limits, from the route's configuration.
    public struct Configuration: Sendable, Hashable {
        /// Most entries kept (0 disables storing; single flight still applies).
        public var capacity: Int
        /// Ceiling on the lifetime relied on, counted from receipt, whatever the URL says: boto3's default
        /// lifetime, so ordinary URLs are not shortened while week-long ones are fetched again hourly, which bounds
        /// how long a URL signed with since-rotated credentials keeps being handed out.
        public var maximumLifetime: TimeInterval
        /// Lower ceiling for URLs signed with temporary credentials (a security token is present): those stop
        /// working when the credentials expire, which the URL does not say. botocore renews credentials 10 to 15
        /// minutes before they expire, so a freshly signed URL is good for at least about 10 minutes. Nil: no
        /// separate ceiling.
        public var temporaryCredentialsMaximumLifetime: TimeInterval?
        /// Larger answers are passed on but not stored (a real one is under 2 KiB), bounding memory at about
        /// `capacity` times this.
        public var maximumBodyBytes: Int

        public init(
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
    public struct Statistics: Sendable, Hashable {
        /// Requests answered from the cache.
        public var hits = 0
        /// Requests that found nothing usable and fetched or joined a fetch (counted by ``value(for:fetch:)``).
        public var misses = 0
        /// Platform calls made.
        public var fetches = 0
        /// Requests that waited for another request's platform call instead of making their own.
        public var joined = 0
        /// Answers stored.
        public var stored = 0
        /// Entries dropped to make room.
        public var evictions = 0

        public init() {}
    }

    /// What the platform answered: its status and body.
    public typealias Fetch = @Sendable () async throws -> (status: Int, body: [UInt8])

    public let configuration: Configuration
    private let clock: @Sendable () -> Date
    private let state: NIOLockedValueBox<State>

    private struct Entry: Sendable {
        var body: [UInt8]
        var presignedURL: String
        var receivedAt: Date
        var expiresAt: Date
        var serveUntil: Date
    }

    private typealias Flight = Task<Result<PresignCacheFetched, any Error>, Never>

    private struct State: Sendable {
        var entries: LRUTable<PresignCacheKey, Entry>
        /// The platform call in progress per key, with an id so that a call started before ``removeAll()`` neither
        /// stores its answer nor removes a newer call.
        var flights: [PresignCacheKey: (id: UInt64, task: Flight)] = [:]
        var nextFlightID: UInt64 = 0
        var statistics = Statistics()
    }

    /// `now` is the wall clock (tests inject a fixed one, so nothing sleeps).
    public init(configuration: Configuration = Configuration(), now: @escaping @Sendable () -> Date = { Date() }) {
        self.configuration = configuration
        self.clock = now
        self.state = NIOLockedValueBox(State(entries: LRUTable(capacity: configuration.capacity)))
    }

    // MARK: - Reading

    /// The cached answer for `key` if it may still be served now. Never waits beyond a short lock and does no I/O:
    /// safe on an event loop.
    public func lookup(key: PresignCacheKey) -> PresignCacheHit? {
        lookup(key: key, now: clock())
    }

    /// The cached answer for `key` if it may still be served at `now`; an entry past its window is dropped.
    public func lookup(key: PresignCacheKey, now: Date) -> PresignCacheHit? {
        state.withLockedValue { s in
            // A miss is counted by the value(for:fetch:) call that follows it, so it is not counted twice.
            let hit = Self.hit(&s, key, now)
            if hit != nil { s.statistics.hits += 1 }
            return hit
        }
    }

    /// The answer for `key`: from the cache when it holds a servable one, else from `fetch`, called once however
    /// many callers ask for the same key at the same time. A thrown error reaches every caller waiting for that
    /// call and is not remembered.
    ///
    /// `fetch` runs in a task of its own, so a caller that goes away does not cancel it for the others.
    public func value(for key: PresignCacheKey, fetch: @escaping Fetch) async throws -> PresignCacheOutcome {
        enum Step {
            case hit(PresignCacheHit)
            case wait(Flight)
        }
        let now = clock()
        let step: Step = state.withLockedValue { s in
            if let hit = Self.hit(&s, key, now) {
                s.statistics.hits += 1
                return .hit(hit)
            }
            s.statistics.misses += 1
            if let flight = s.flights[key] {
                s.statistics.joined += 1
                return .wait(flight.task)
            }
            s.nextFlightID += 1
            let id = s.nextFlightID
            // Created under the lock so no second caller can start its own; it cannot finish before the lock is
            // released, as finishing takes the lock.
            let task = Flight { await self.run(fetch, for: key, flight: id) }
            s.flights[key] = (id, task)
            s.statistics.fetches += 1
            return .wait(task)
        }
        switch step {
        case .hit(let hit): return .hit(hit)
        case .wait(let flight): return .miss(try await flight.value.get())
        }
    }

    // MARK: - Housekeeping

    /// Entries held, including any past their window not yet looked at again.
    public var count: Int { state.withLockedValue { $0.entries.count } }

    /// Forgets every entry (`DELETE /credgate/v1/cache/presign`). Platform calls already in progress still answer
    /// their callers but store nothing, and later callers start a call of their own.
    public func removeAll() {
        state.withLockedValue { s in
            s.entries.removeAll()
            s.flights.removeAll()
        }
    }

    public var statistics: Statistics { state.withLockedValue { $0.statistics } }

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

    /// The one platform call for `key`: fetch, decide whether to store, and retire the flight.
    private func run(_ fetch: Fetch, for key: PresignCacheKey, flight id: UInt64) async
        -> Result<PresignCacheFetched, any Error>
    {
        let answer: (status: Int, body: [UInt8])
        do {
            answer = try await fetch()
        } catch {
            state.withLockedValue { s in
                if s.flights[key]?.id == id { s.flights[key] = nil }
            }
            return .failure(error)
        }
        let receivedAt = clock()
        let url = answer.status == 200 ? Self.presignedURL(in: answer.body) : nil
        var entry: Entry?
        if let url, answer.body.count <= configuration.maximumBodyBytes,
           let expiresAt = PresignedURLExpiry.expiry(
               of: url, receivedAt: receivedAt, maximumLifetime: configuration.maximumLifetime,
               temporaryCredentialsMaximumLifetime: configuration.temporaryCredentialsMaximumLifetime),
           let serveUntil = PresignServingWindow.serveUntil(receivedAt: receivedAt, expiresAt: expiresAt)
        {
            entry = Entry(body: answer.body, presignedURL: url, receivedAt: receivedAt, expiresAt: expiresAt,
                          serveUntil: serveUntil)
        }
        let stored = state.withLockedValue { s -> Bool in
            // A flight that removeAll() forgot stores nothing: its answer may predate the reason for clearing.
            guard s.flights[key]?.id == id else { return false }
            s.flights[key] = nil
            guard let entry else { return false }
            if let evicted = s.entries.set(entry, forKey: key), evicted.key != key { s.statistics.evictions += 1 }
            let kept = s.entries.peek(key) != nil
            if kept { s.statistics.stored += 1 }
            return kept
        }
        let secondsLeft = stored ? entry.map { Int($0.serveUntil.timeIntervalSince(receivedAt).rounded(.down)) } : nil
        return .success(PresignCacheFetched(
            status: answer.status, body: answer.body, presignedURL: url, isStored: stored, secondsLeft: secondsLeft))
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
