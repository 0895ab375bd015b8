import Foundation

/// How long a cached presigned URL may still be handed out.
///
/// A client that receives a URL needs time to use it (a download may start seconds later, a slow one may take
/// minutes), so the cache stops serving an entry a safety margin before the URL expires: 10% of its lifetime,
/// raised to 60 s, but never more than half the lifetime so that a short-lived URL is still cached for half its
/// life rather than not at all. An hour-long URL is served for 54 minutes, a 6-second one for 3 seconds. Every
/// client therefore gets a URL with at least the margin left. (The same rule as ``TokenLifetime/refreshMargin``
/// uses for session tokens, kept separate because the cache counts in wall-clock seconds.)
enum PresignServingWindow {
    /// The margin for a URL that lives `lifetime` seconds; zero for a lifetime that is zero or negative.
    static func margin(lifetime: TimeInterval) -> TimeInterval {
        guard lifetime.isFinite, lifetime > 0 else { return 0 }
        return min(max(lifetime / 10, 60), lifetime / 2)
    }

    /// Until when an answer received at `receivedAt` for a URL expiring at `expiresAt` may be served, or nil when it
    /// must not be cached at all (already expired when it arrived, or expiring at that very moment).
    static func serveUntil(receivedAt: Date, expiresAt: Date) -> Date? {
        let lifetime = expiresAt.timeIntervalSince(receivedAt)
        guard lifetime.isFinite, lifetime > 0 else { return nil }
        return expiresAt.addingTimeInterval(-margin(lifetime: lifetime))
    }
}
