import Foundation

@testable import CredGate

/// The cache's ``PresignCache/claim(key:whenJoinedCallCompletes:)`` protocol wrapped as one `async` call, for
/// the cache's own tests (the data path claims and reports through the ticket on its event loop, with no task).
extension PresignCache {
    typealias Fetch = @Sendable () async throws -> (status: Int, body: [UInt8])

    /// The answer for `key`: from the cache when it holds a servable one, else from `fetch`, called once however
    /// many callers ask for the same key at the same time. A thrown error reaches every caller waiting for that
    /// call and is not remembered.
    ///
    /// `fetch` runs in a task of its own, so a caller that goes away does not cancel it for the others.
    func value(for key: PresignCacheKey, fetch: @escaping Fetch) async throws -> PresignCacheOutcome {
        try await withCheckedThrowingContinuation {
            (continuation: CheckedContinuation<PresignCacheOutcome, any Error>) in
            let claim = self.claim(key: key) { result in continuation.resume(with: result.map { .miss($0) }) }
            switch claim {
            case .hit(let hit):
                continuation.resume(returning: .hit(hit))
            case .lead(let ticket):
                Task {
                    do {
                        let answer = try await fetch()
                        continuation.resume(returning: .miss(ticket.complete(status: answer.status, body: answer.body)))
                    } catch {
                        ticket.fail(error)
                        continuation.resume(throwing: error)
                    }
                }
            case .joined:
                break
            }
        }
    }
}

/// What ``PresignCache/value(for:fetch:)`` produced.
enum PresignCacheOutcome: Sendable, Hashable {
    /// Served from the cache; the platform was not asked.
    case hit(PresignCacheHit)
    /// Fetched from the platform (by this caller or by a concurrent identical one).
    case miss(PresignCacheFetched)
}
