import Crypto
import Foundation

/// Locally minted stand-in session tokens for unmodified SDKs that log in themselves: they look like the
/// platform's JWTs (HS256, `exp`, `iat`, `jti`, `token_type`) but are signed with a key that exists only in this
/// process, so credgate can recognise its own placeholders (to strip them and to re-key SSN ciphertext made with
/// them) and nobody else can forge one.
///
/// Signed by hand with swift-crypto's HMAC rather than jwt-kit: jwt-kit 5 signs and verifies through an async
/// key collection, and these run synchronously on the event loop inside a filter.
final class PlaceholderTokens: Sendable {
    private let key: SymmetricKey

    init() {
        key = SymmetricKey(size: .bits256)
    }

    /// A new placeholder of the given type ("access" or "refresh"), valid for ten years.
    func mint(type: String) -> String {
        let now = Int(Date().timeIntervalSince1970)
        let header = #"{"alg":"HS256","typ":"JWT"}"#
        let payload =
            #"{"token_type":"\#(type)","exp":\#(now + 10 * 365 * 86400),"iat":\#(now),"jti":"\#(UUID().uuidString.lowercased())","credgate_placeholder":true}"#
        let signingInput = Self.base64url(Data(header.utf8)) + "." + Self.base64url(Data(payload.utf8))
        let signature = HMAC<SHA256>.authenticationCode(for: Data(signingInput.utf8), using: key)
        return signingInput + "." + Self.base64url(Data(signature))
    }

    /// Whether `token` is a placeholder this process minted (constant-time signature check).
    func isPlaceholder(_ token: String) -> Bool {
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let signature = Self.base64urlDecode(parts[2]) else { return false }
        let signingInput = parts[0] + "." + parts[1]
        return HMAC<SHA256>.isValidAuthenticationCode(signature, authenticating: Data(signingInput.utf8), using: key)
    }

    static func base64url(_ data: Data) -> String {
        data.base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func base64urlDecode(_ s: Substring) -> Data? {
        var b = s.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b.count % 4 != 0 { b += "=" }
        return Data(base64Encoded: b)
    }
}
