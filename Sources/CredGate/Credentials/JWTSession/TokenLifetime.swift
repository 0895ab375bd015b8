import Foundation
import JWTKit

/// How long an access token lasts, read from the token itself, and when to renew it.
///
/// Expiry is kept on `ContinuousClock`, never the wall clock: on Linux the Swift runtime reads it with
/// `clock_gettime(CLOCK_BOOTTIME)` (`swift_get_time` in `stdlib/public/Concurrency/Clock.cpp`,
/// `swift_clock_id_continuous`), which is monotonic and keeps counting while the machine is suspended, whereas
/// `SuspendingClock` uses `CLOCK_MONOTONIC`, which stops. So a token obtained before a laptop sleeps is seen as
/// expired when it wakes, and setting the wall clock back or forth changes nothing.
enum TokenLifetime {
    /// Where a lifetime came from, for the log.
    enum Source: String, Sendable {
        /// `exp - iat`: both from the issuer's clock, so our clock's skew does not matter.
        case issuedAt = "exp - iat"
        /// `exp - now`: only `exp`, so our wall clock is trusted once, at receipt.
        case wallClock = "exp - now"
        /// Not a JWT, or no `exp`: the configured `default_lifetime`.
        case assumed = "default_lifetime"
    }

    /// The claims that matter here. Everything else in the payload is ignored.
    struct ExpiryClaims: JWTPayload {
        var exp: ExpirationClaim?
        var iat: IssuedAtClaim?

        /// Never called: the token is decoded without verification (see ``lifetime(of:default:now:)``).
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    /// The lifetime of `token`, counted from when it was issued.
    ///
    /// The payload is decoded with jwt-kit's parser but the signature is not verified: credgate is not the
    /// token's audience and holds no key for it; it only needs to know when to renew. The platform still checks
    /// every token it receives. The result may be zero or negative for a token that is already expired.
    static func lifetime(of token: String, default fallback: Duration, now: Date = Date())
        -> (lifetime: Duration, source: Source)
    {
        guard let claims = try? DefaultJWTParser().parse([UInt8](token.utf8), as: ExpiryClaims.self).payload,
            let exp = claims.exp?.value
        else { return (fallback, .assumed) }
        if let iat = claims.iat?.value {
            return (seconds(exp.timeIntervalSince(iat)), .issuedAt)
        }
        return (seconds(exp.timeIntervalSince(now)), .wallClock)
    }

    /// How long before expiry to renew: `configured` when set, else 10% of the lifetime raised to 60 s; never more
    /// than half the lifetime either way, so that a short token is still used for half its life instead of being
    /// renewed in a loop (2.8 h -> 1008 s, 1 h -> 360 s, 4 s -> 2 s).
    static func refreshMargin(lifetime: Duration, configured: Duration? = nil) -> Duration {
        let half = lifetime / 2
        let wanted = configured ?? max(lifetime / 10, .seconds(60))
        return max(.zero, min(wanted, half))
    }

    private static func seconds(_ interval: TimeInterval) -> Duration {
        guard interval.isFinite else { return .zero }
        // Clamp to a century so a silly `exp` cannot overflow the arithmetic on instants.
        let clamped = min(max(interval, -3_153_600_000), 3_153_600_000)
        return .milliseconds(Int64((clamped * 1000).rounded(.down)))
    }
}
