import Foundation
import FuzzSupport

@testable import CredGate

/// Fuzz target: `PresignedURLExpiry(url:)`, which reads a presigned URL's expiry (SigV4 `X-Amz-Date` +
/// `X-Amz-Expires`, SigV2 `Expires`) from the platform's presign answer to decide how long to cache it, and its
/// hand-written `yyyyMMdd'T'HHmmss'Z'` date parser.
///
/// Input: the whole input is the URL. Besides traps, it checks what the type promises: a SigV4 expiry lies 1 s to
/// 7 days after its signing date, a SigV2 one after 1970 and before year 10000, and the capped expiry is never
/// later than the URL's own nor than the ceiling after receipt.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPresignedURL(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let url = String(fuzzBytes: input.rest())
    _ = PresignedURLExpiry.amzDate(url)
    guard let expiry = PresignedURLExpiry(url: url) else { return 0 }
    switch expiry.form {
    case .sigV4:
        guard let signedAt = expiry.signedAt else {
            fuzzExpect(false, "a SigV4 expiry without its signing date")
            return 0
        }
        let lifetime = expiry.expiresAt.timeIntervalSince(signedAt)
        fuzzExpect(
            lifetime >= 1 && lifetime <= TimeInterval(PresignedURLExpiry.maximumSigV4Expires),
            "a SigV4 lifetime of \(lifetime) s")
    case .sigV2:
        fuzzExpect(expiry.signedAt == nil, "a SigV2 expiry with a signing date")
        fuzzExpect(
            expiry.expiresAt.timeIntervalSince1970 > 0 && expiry.expiresAt.timeIntervalSince1970 < 253_402_300_800,
            "a SigV2 expiry at \(expiry.expiresAt.timeIntervalSince1970)")
    }
    let receivedAt = Date(timeIntervalSince1970: 1_767_225_600) // 2026-01-01
    let capped = expiry.expiry(receivedAt: receivedAt, maximumLifetime: 3600, temporaryCredentialsMaximumLifetime: 600)
    fuzzExpect(capped <= expiry.expiresAt, "the capped expiry is later than the URL's")
    fuzzExpect(
        capped <= receivedAt.addingTimeInterval(expiry.usesTemporaryCredentials ? 600 : 3600),
        "the capped expiry is later than the ceiling")
    fuzzExpect(
        PresignedURLExpiry.expiry(
            of: url, receivedAt: receivedAt, maximumLifetime: 3600,
            temporaryCredentialsMaximumLifetime: 600) == capped,
        "expiry(of:) disagrees with init(url:)")
    return 0
}
