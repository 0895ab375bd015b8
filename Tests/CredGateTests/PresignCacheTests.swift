import Foundation
import Testing

@testable import CredGate

// MARK: - Helpers

/// A wall clock the test moves by hand, so expiry is tested without sleeping.
private final class ManualWallClock: @unchecked Sendable {
    private let lock = NSLock()
    private var current: Date

    init(_ start: Date) { current = start }

    var now: Date { lock.withLock { current } }
    func advance(_ seconds: TimeInterval) { lock.withLock { current = current.addingTimeInterval(seconds) } }
    func set(_ date: Date) { lock.withLock { current = date } }
}

/// Holds fetches open until the test releases them, so concurrent callers really overlap.
private actor FetchGate {
    private var isOpen = false
    private var waiters: [CheckedContinuation<Void, Never>] = []

    func wait() async {
        if isOpen { return }
        await withCheckedContinuation { waiters.append($0) }
    }

    func open() {
        isOpen = true
        for waiter in waiters { waiter.resume() }
        waiters.removeAll()
    }
}

/// Counts platform calls, independently of the cache's own statistics.
private actor CallCounter {
    private(set) var count = 0
    @discardableResult func increment() -> Int {
        count += 1
        return count
    }
}

private struct PlatformDown: Error, Equatable {
    var attempt: Int
}

/// Polls `condition` (yielding, then briefly sleeping) for up to 5 s: for waiting until concurrent callers have
/// all arrived, never for waiting on expiry.
private func eventually(_ condition: @Sendable () async -> Bool) async -> Bool {
    for round in 0..<5_000 {
        if await condition() { return true }
        if round < 100 { await Task.yield() } else { try? await Task.sleep(for: .milliseconds(1)) }
    }
    return false
}

private enum PresignFixtures {
    /// The instant the fixtures' URLs were signed, and the test clocks' start: 2026-11-21T10:15:00Z.
    static let start = PresignBotocoreVectors.signedAt

    static func key(_ path: String = "docs/a.pdf", identity: String = "assured/alice@example.com") -> PresignCacheKey {
        PresignCacheKey(object: try! S3URI(parsing: "s3://assured-bucket/\(path)"), identity: identity)
    }

    /// The platform's 200 body for `url`, written as Django REST Framework writes it.
    static func body(_ url: String) -> [UInt8] {
        Array(#"{"presigned_url": "\#(url)"}"#.utf8)
    }

    static func answer(expires: Int = 3600, token: Bool = false) -> (status: Int, body: [UInt8]) {
        (200, body(PresignBotocoreVectors.sigV4(expires: expires, token: token)))
    }
}

// MARK: - Hits, misses, expiry

@Suite struct PresignCacheTests {
    fileprivate typealias F = PresignFixtures

    @Test func missThenHitWithAgeAndSecondsLeft() async throws {
        let clock = ManualWallClock(F.start)
        let cache = PresignCache(now: { clock.now })
        let calls = CallCounter()
        let fetch: PresignCache.Fetch = {
            await calls.increment()
            return F.answer()
        }

        #expect(cache.lookup(key: F.key()) == nil)
        guard case .miss(let fetched) = try await cache.value(for: F.key(), fetch: fetch) else {
            Issue.record("expected a miss")
            return
        }
        #expect(fetched.status == 200)
        #expect(fetched.body == F.answer().body)
        #expect(fetched.presignedURL == PresignBotocoreVectors.sigV4(expires: 3600))
        #expect(fetched.isStored)
        #expect(fetched.secondsLeft == 3240)

        clock.advance(600)
        guard case .hit(let hit) = try await cache.value(for: F.key(), fetch: fetch) else {
            Issue.record("expected a hit")
            return
        }
        #expect(hit.body == F.answer().body)
        #expect(hit.presignedURL == PresignBotocoreVectors.sigV4(expires: 3600))
        #expect(hit.age == 600)
        #expect(hit.secondsLeft == 2640)
        #expect(hit.expiresAt == F.start.addingTimeInterval(3600))
        #expect(await calls.count == 1)

        // The synchronous path sees the same entry; a fraction of a second is rounded down on both counts.
        let later = try #require(cache.lookup(key: F.key(), now: F.start.addingTimeInterval(1000.7)))
        #expect(later.age == 1000)
        #expect(later.secondsLeft == 2239)
        #expect(cache.count == 1)
        let stats = cache.statistics
        #expect(stats.fetches == 1)
        #expect(stats.hits == 2)
        #expect(stats.misses == 1)
        #expect(stats.stored == 1)
    }

    @Test func anHourLongURLIsServedFor54Minutes() async throws {
        let cache = PresignCache(now: { F.start })
        _ = try await cache.value(for: F.key(), fetch: { F.answer(expires: 3600) })
        #expect(cache.lookup(key: F.key(), now: F.start.addingTimeInterval(3239))?.secondsLeft == 1)
        #expect(cache.lookup(key: F.key(), now: F.start.addingTimeInterval(3239.999)) != nil)
        #expect(cache.lookup(key: F.key(), now: F.start.addingTimeInterval(3240)) == nil)
        // An entry past its window is dropped, not kept for a clock that might go back.
        #expect(cache.count == 0)
        #expect(cache.lookup(key: F.key(), now: F.start) == nil)
    }

    @Test func aSixSecondURLIsServedForThreeSecondsAndNeverAfter() async throws {
        let clock = ManualWallClock(F.start)
        let cache = PresignCache(now: { clock.now })
        let calls = CallCounter()
        let fetch: PresignCache.Fetch = {
            await calls.increment()
            return F.answer(expires: 6)
        }
        _ = try await cache.value(for: F.key(), fetch: fetch)
        clock.advance(2.5)
        guard case .hit(let hit) = try await cache.value(for: F.key(), fetch: fetch) else {
            Issue.record("expected a hit")
            return
        }
        #expect(hit.secondsLeft == 0)
        #expect(hit.age == 2)
        clock.advance(0.5)
        guard case .miss = try await cache.value(for: F.key(), fetch: fetch) else {
            Issue.record("served a URL with less than the margin left")
            return
        }
        #expect(await calls.count == 2)
    }

    @Test func aURLReceivedLateHasOnlyItsRemainingLifetime() async throws {
        // Signed at `start` for an hour but received 50 minutes later (a slow platform, or clocks apart): the
        // lifetime is what is left, 600 s, so the margin is 60 s.
        let received = F.start.addingTimeInterval(3000)
        let cache = PresignCache(now: { received })
        guard case .miss(let fetched) = try await cache.value(for: F.key(), fetch: { F.answer() }) else {
            Issue.record("expected a miss")
            return
        }
        #expect(fetched.secondsLeft == 540)
        #expect(cache.lookup(key: F.key(), now: received.addingTimeInterval(539.5)) != nil)
        #expect(cache.lookup(key: F.key(), now: received.addingTimeInterval(540)) == nil)
    }

    @Test func anExpiredURLIsPassedOnButNotStored() async throws {
        let cache = PresignCache(now: { F.start.addingTimeInterval(3600) })
        guard case .miss(let fetched) = try await cache.value(for: F.key(), fetch: { F.answer() }) else {
            Issue.record("expected a miss")
            return
        }
        #expect(fetched.status == 200)
        #expect(!fetched.isStored)
        #expect(fetched.secondsLeft == nil)
        #expect(cache.count == 0)
    }

    @Test func theConfiguredCeilingsShortenTheWindow() async throws {
        let cache = PresignCache(
            configuration: .init(maximumLifetime: 600, temporaryCredentialsMaximumLifetime: 120), now: { F.start })
        guard case .miss(let plain) = try await cache.value(for: F.key("plain"), fetch: { F.answer() }),
            case .miss(let temporary) = try await cache.value(
                for: F.key("token"), fetch: { F.answer(token: true) })
        else {
            Issue.record("expected misses")
            return
        }
        #expect(plain.secondsLeft == 540) // capped to 600 s: margin 60 s
        #expect(temporary.secondsLeft == 60) // capped to 120 s: margin 60 s
        #expect(cache.lookup(key: F.key("plain"))?.expiresAt == F.start.addingTimeInterval(600))
    }

    @Test func sigV2AnswersAreCachedToo() async throws {
        // The botocore SigV2 vector expires at start + 3600 like the SigV4 one.
        let cache = PresignCache(now: { F.start })
        guard
            case .miss(let fetched) = try await cache.value(
                for: F.key(), fetch: { (200, F.body(PresignBotocoreVectors.sigV2)) })
        else {
            Issue.record("expected a miss")
            return
        }
        #expect(fetched.isStored)
        #expect(fetched.secondsLeft == 3240)
        #expect(cache.lookup(key: F.key())?.presignedURL == PresignBotocoreVectors.sigV2)
    }

    @Test(arguments: [
        (500, #"{"detail": "A server error occurred."}"#),
        (401, #"{"detail": "Given token not valid for any token type"}"#),
        (201, #"{"presigned_url": "\#(PresignBotocoreVectors.sigV4)"}"#),
        (200, #"{"presigned_url": "https://assured-bucket.s3.amazonaws.com/docs/a.pdf"}"#),
        (200, #"{"presigned_url": ""}"#),
        (200, #"{"url": "\#(PresignBotocoreVectors.sigV4)"}"#),
        (200, "not json"),
        (200, ""),
    ])
    func onlyA200WithAReadableExpiryIsStored(status: Int, body: String) async throws {
        let cache = PresignCache(now: { F.start })
        let calls = CallCounter()
        let fetch: PresignCache.Fetch = {
            await calls.increment()
            return (status, Array(body.utf8))
        }
        for _ in 0..<2 {
            guard case .miss(let fetched) = try await cache.value(for: F.key(), fetch: fetch) else {
                Issue.record("expected a miss")
                return
            }
            #expect(fetched.status == status)
            #expect(fetched.body == Array(body.utf8))
            #expect(!fetched.isStored)
        }
        #expect(await calls.count == 2)
        #expect(cache.count == 0)
    }

    @Test func oversizedBodiesAreNotStored() async throws {
        let cache = PresignCache(configuration: .init(maximumBodyBytes: 100), now: { F.start })
        guard case .miss(let fetched) = try await cache.value(for: F.key(), fetch: { F.answer() }) else {
            Issue.record("expected a miss")
            return
        }
        #expect(fetched.presignedURL != nil)
        #expect(!fetched.isStored)
        #expect(cache.count == 0)
    }

    @Test func differentIdentitiesNeverShareAnEntry() async throws {
        let cache = PresignCache(now: { F.start })
        let alice = F.key(identity: "assured/alice")
        let bob = F.key(identity: "assured/bob")
        let aliceURL = PresignBotocoreVectors.sigV4
        let bobURL = PresignBotocoreVectors.sigV4Token
        _ = try await cache.value(for: alice, fetch: { (200, F.body(aliceURL)) })
        #expect(cache.lookup(key: bob) == nil)
        guard case .miss = try await cache.value(for: bob, fetch: { (200, F.body(bobURL)) }) else {
            Issue.record("bob was served alice's URL")
            return
        }
        #expect(cache.count == 2)
        #expect(cache.lookup(key: alice)?.presignedURL == aliceURL)
        #expect(cache.lookup(key: bob)?.presignedURL == bobURL)
        // And the object matters too.
        #expect(cache.lookup(key: F.key("docs/other.pdf", identity: "assured/alice")) == nil)
    }

    @Test func identitiesStayOutOfDescriptions() {
        #expect(F.key(identity: "assured/alice@example.com").description == "s3://assured-bucket/docs/a.pdf")
    }
}

// MARK: - Single flight

@Suite struct PresignCacheSingleFlightTests {
    fileprivate typealias F = PresignFixtures

    @Test func aHundredConcurrentIdenticalRequestsMakeOneCall() async throws {
        let cache = PresignCache(now: { F.start })
        let gate = FetchGate()
        let calls = CallCounter()
        let fetch: PresignCache.Fetch = {
            await calls.increment()
            await gate.wait()
            return F.answer()
        }
        try await withThrowingTaskGroup(of: PresignCacheOutcome.self) { group in
            for _ in 0..<100 {
                group.addTask { try await cache.value(for: F.key(), fetch: fetch) }
            }
            // Release the call only once all 100 are waiting for it.
            #expect(await eventually { cache.statistics.misses == 100 })
            await gate.open()
            var outcomes: [PresignCacheOutcome] = []
            for try await outcome in group { outcomes.append(outcome) }
            #expect(outcomes.count == 100)
            let expected = PresignCacheOutcome.miss(
                PresignCacheFetched(
                    status: 200, body: F.answer().body, presignedURL: PresignBotocoreVectors.sigV4(expires: 3600),
                    isStored: true, secondsLeft: 3240))
            #expect(outcomes.allSatisfy { $0 == expected })
        }
        #expect(await calls.count == 1)
        #expect(cache.statistics.fetches == 1)
        #expect(cache.statistics.joined == 99)
        // The 101st is a hit.
        guard case .hit = try await cache.value(for: F.key(), fetch: fetch) else {
            Issue.record("expected a hit")
            return
        }
        #expect(await calls.count == 1)
    }

    @Test func differentKeysFetchConcurrently() async throws {
        let cache = PresignCache(now: { F.start })
        let gate = FetchGate()
        let calls = CallCounter()
        let fetch: PresignCache.Fetch = {
            await calls.increment()
            await gate.wait()
            return F.answer()
        }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for i in 0..<10 {
                for _ in 0..<5 {
                    group.addTask { _ = try await cache.value(for: F.key("docs/\(i).pdf"), fetch: fetch) }
                }
            }
            // All ten calls start before any answers: one key's call does not hold up another's.
            #expect(await eventually { await calls.count == 10 })
            await gate.open()
            try await group.waitForAll()
        }
        #expect(await calls.count == 10)
        #expect(cache.count == 10)
    }

    @Test func everyWaiterGetsTheErrorAndTheNextCallTriesAgain() async throws {
        let cache = PresignCache(now: { F.start })
        let gate = FetchGate()
        let calls = CallCounter()
        let fetch: PresignCache.Fetch = {
            let attempt = await calls.increment()
            if attempt == 1 {
                await gate.wait()
                throw PlatformDown(attempt: attempt)
            }
            return F.answer()
        }
        await withTaskGroup(of: (any Error)?.self) { group in
            for _ in 0..<20 {
                group.addTask {
                    do {
                        _ = try await cache.value(for: F.key(), fetch: fetch)
                        return nil
                    } catch {
                        return error
                    }
                }
            }
            #expect(await eventually { cache.statistics.misses == 20 })
            await gate.open()
            var errors: [PlatformDown] = []
            for await error in group { errors.append(error as? PlatformDown ?? PlatformDown(attempt: -1)) }
            #expect(errors == Array(repeating: PlatformDown(attempt: 1), count: 20))
        }
        #expect(await calls.count == 1)
        #expect(cache.count == 0)

        // Not remembered: the next request asks the platform again, and that answer is stored.
        guard case .miss(let fetched) = try await cache.value(for: F.key(), fetch: fetch) else {
            Issue.record("expected a miss")
            return
        }
        #expect(fetched.isStored)
        #expect(await calls.count == 2)
        guard case .hit = try await cache.value(for: F.key(), fetch: fetch) else {
            Issue.record("expected a hit")
            return
        }
        #expect(await calls.count == 2)
    }

    @Test func aCallStartedBeforeRemoveAllStoresNothing() async throws {
        let cache = PresignCache(now: { F.start })
        let gate = FetchGate()
        let calls = CallCounter()
        let fetch: PresignCache.Fetch = {
            await calls.increment()
            await gate.wait()
            return F.answer()
        }
        async let first = cache.value(for: F.key(), fetch: fetch)
        #expect(await eventually { await calls.count == 1 })
        cache.removeAll()
        await gate.open()
        guard case .miss(let fetched) = try await first else {
            Issue.record("expected a miss")
            return
        }
        // The waiting caller still gets its answer; the cache keeps nothing from before the clear.
        #expect(fetched.status == 200)
        #expect(!fetched.isStored)
        #expect(cache.count == 0)
    }
}

// MARK: - Bound, eviction, clearing

@Suite struct PresignCacheBoundTests {
    fileprivate typealias F = PresignFixtures

    @Test func leastRecentlyUsedIsEvictedFirst() async throws {
        let cache = PresignCache(configuration: .init(capacity: 3), now: { F.start })
        for name in ["a", "b", "c"] {
            _ = try await cache.value(for: F.key(name), fetch: { F.answer() })
        }
        #expect(cache.keysByRecency == [F.key("c"), F.key("b"), F.key("a")])
        // Using "a" makes "b" the least recently used.
        #expect(cache.lookup(key: F.key("a")) != nil)
        #expect(cache.keysByRecency == [F.key("a"), F.key("c"), F.key("b")])
        _ = try await cache.value(for: F.key("d"), fetch: { F.answer() })
        #expect(cache.count == 3)
        #expect(cache.keysByRecency == [F.key("d"), F.key("a"), F.key("c")])
        #expect(cache.lookup(key: F.key("b")) == nil)
        #expect(cache.statistics.evictions == 1)
        _ = try await cache.value(for: F.key("e"), fetch: { F.answer() })
        #expect(cache.keysByRecency == [F.key("e"), F.key("d"), F.key("a")])
        #expect(cache.statistics.evictions == 2)
    }

    @Test func neverMoreThanTheCapacity() async throws {
        let cache = PresignCache(configuration: .init(capacity: 50), now: { F.start })
        for i in 0..<200 {
            _ = try await cache.value(for: F.key("docs/\(i).pdf"), fetch: { F.answer() })
            #expect(cache.count == min(i + 1, 50))
        }
        #expect(cache.keysByRecency == (150..<200).reversed().map { F.key("docs/\($0).pdf") })
        #expect(cache.statistics.evictions == 150)
    }

    @Test func theDefaultCapacityIsTenThousand() {
        #expect(PresignCache().configuration.capacity == 10_000)
        #expect(PresignCache().configuration.maximumLifetime == 3_600)
    }

    @Test func capacityZeroStoresNothingButStillAnswers() async throws {
        let cache = PresignCache(configuration: .init(capacity: 0), now: { F.start })
        guard case .miss(let fetched) = try await cache.value(for: F.key(), fetch: { F.answer() }) else {
            Issue.record("expected a miss")
            return
        }
        #expect(fetched.status == 200)
        #expect(!fetched.isStored)
        #expect(cache.count == 0)
        #expect(cache.statistics.evictions == 0)
    }

    @Test func removeAllEmptiesTheCache() async throws {
        let cache = PresignCache(now: { F.start })
        let calls = CallCounter()
        let fetch: PresignCache.Fetch = {
            await calls.increment()
            return F.answer()
        }
        for i in 0..<5 { _ = try await cache.value(for: F.key("\(i)"), fetch: fetch) }
        #expect(cache.count == 5)
        cache.removeAll()
        #expect(cache.count == 0)
        #expect(cache.lookup(key: F.key("0")) == nil)
        guard case .miss = try await cache.value(for: F.key("0"), fetch: fetch) else {
            Issue.record("expected a miss after removeAll")
            return
        }
        #expect(await calls.count == 6)
        #expect(cache.count == 1)
    }
}

// MARK: - The LRU table itself

@Suite struct PresignCacheLRUTableTests {
    @Test func matchesASimpleModelOverManyOperations() {
        // A deterministic pseudo-random mix of reads, writes and removals, checked against an array kept in
        // recency order: every index fix-up of the linked list is exercised, including the hole-filling move.
        var table = LRUTable<Int, Int>(capacity: 5)
        var model: [(key: Int, value: Int)] = [] // most recent first
        var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next(_ bound: Int) -> Int {
            seed = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Int((seed >> 33) % UInt64(bound))
        }
        for step in 0..<20_000 {
            let key = next(9)
            switch next(4) {
            case 0:
                let got = table.value(forKey: key)
                if let i = model.firstIndex(where: { $0.key == key }) {
                    let entry = model.remove(at: i)
                    model.insert(entry, at: 0)
                    #expect(got == entry.value)
                } else {
                    #expect(got == nil)
                }
            case 1:
                let evicted = table.removeValue(forKey: key)
                let i = model.firstIndex(where: { $0.key == key })
                #expect(evicted == i.map { model[$0].value })
                if let i { model.remove(at: i) }
            default:
                let evicted = table.set(step, forKey: key)
                var expected: (key: Int, value: Int)?
                if let i = model.firstIndex(where: { $0.key == key }) {
                    model.remove(at: i)
                } else if model.count == 5 {
                    expected = model.removeLast()
                }
                model.insert((key, step), at: 0)
                #expect(evicted?.key == expected?.key)
                #expect(evicted?.value == expected?.value)
            }
            #expect(table.keysByRecency == model.map(\.key))
            #expect(table.count == model.count)
            if table.keysByRecency != model.map(\.key) { return }
        }
    }

    @Test func peekLeavesTheOrderAlone() {
        var table = LRUTable<String, Int>(capacity: 2)
        table.set(1, forKey: "a")
        table.set(2, forKey: "b")
        #expect(table.peek("a") == 1)
        #expect(table.keysByRecency == ["b", "a"])
        #expect(table.set(3, forKey: "c")?.key == "a")
        table.removeAll()
        #expect(table.isEmpty)
        #expect(table.keysByRecency.isEmpty)
    }
}
