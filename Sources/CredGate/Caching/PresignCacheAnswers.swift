import Foundation

/// A presign answer served from the cache, with what the response headers need (`Age`,
/// `Cache-Control: private, max-age=<secondsLeft>`, `X-Cache: HIT`).
struct PresignCacheHit: Sendable, Hashable {
    /// The platform's 200 body, byte for byte as it was received.
    let body: [UInt8]
    /// The `presigned_url` read from that body (for a redirect to it).
    let presignedURL: String
    /// Whole seconds since the platform answered.
    let age: Int
    /// Whole seconds this entry may still be served: until the safety margin before expiry, not until expiry
    /// itself, so a client or browser that keeps the answer for `max-age` still holds a URL with the margin left.
    let secondsLeft: Int
    /// When the URL expires, as relied on (the URL's own expiry, capped by the configured maximum lifetime).
    let expiresAt: Date

}

/// The platform's answer to a presign request that was not served from the cache (`X-Cache: MISS`), shared by
/// every caller that waited for the same fetch.
struct PresignCacheFetched: Sendable, Hashable {
    /// The platform's status and body, unchanged, whatever they are.
    let status: Int
    let body: [UInt8]
    /// The `presigned_url` of a 200 body, when it has one.
    let presignedURL: String?
    /// Whether the answer was stored: a 200 whose URL expiry could be read and leaves time to serve it.
    let isStored: Bool
    /// For a stored answer, whole seconds it will be served from the cache (as ``PresignCacheHit/secondsLeft``).
    let secondsLeft: Int?

}
