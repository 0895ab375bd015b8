import Foundation
import FuzzSupport

@testable import CredGate

/// Fuzz target: `TokenLifetime.lifetime(of:default:now:)`, which runs jwt-kit's parser (base64url, JSON,
/// `exp`/`iat` claims as dates) on every access token the platform's login or refresh answer holds, without
/// verifying it; and `refreshMargin`, which turns the lifetime into when to renew.
///
/// Input layout:
/// ```
/// byte 0     a configured refresh margin in seconds (0: none, the default rule)
/// rest       the token
/// ```
/// Besides traps, it checks that a lifetime is within the century the code clamps to, that a token it cannot
/// read gets the configured default, and that the refresh margin is between zero and half the lifetime.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzTokenLifetime(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let marginByte = input.byte()
    let token = String(fuzzBytes: input.rest())
    let fallback = Duration.seconds(3600)
    let (lifetime, source) = TokenLifetime.lifetime(of: token, default: fallback, now: now)
    let century = Duration.seconds(3_153_600_000)
    fuzzExpect(lifetime >= .zero - century && lifetime <= century, "a lifetime of \(lifetime)")
    if source == .assumed { fuzzExpect(lifetime == fallback, "an unread token did not get the default") }

    let configured = marginByte == 0 ? nil : Duration.seconds(Int(marginByte))
    let margin = TokenLifetime.refreshMargin(lifetime: lifetime, configured: configured)
    fuzzExpect(margin >= .zero, "a negative refresh margin \(margin)")
    fuzzExpect(
        lifetime <= .zero ? margin == .zero : margin <= lifetime / 2,
        "a refresh margin of \(margin) for a lifetime of \(lifetime)")
    return 0
}

/// A fixed "now", so that `exp - now` lifetimes do not depend on when the fuzzer runs.
let now = Date(timeIntervalSince1970: 1_767_225_600) // 2026-01-01
