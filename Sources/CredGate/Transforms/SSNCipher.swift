import Crypto
import Foundation
import _CryptoExtras

/// The platform's SSN encryption (../shared/platforms/assured.md, "SSN"): key = SHA-256 of the exact access
/// token string, a random 16-byte IV as the initial counter block of AES-256-CTR, no padding, and
/// `base64(iv || ciphertext)`.
enum SSNCipher {
    static func encrypt(_ digits: String, token: String, iv: [UInt8]? = nil) throws -> String {
        let iv = iv ?? (0..<16).map { _ in UInt8.random(in: 0...255) }
        let key = SymmetricKey(data: SHA256.hash(data: Data(token.utf8)))
        let ciphertext = try AES._CTR.encrypt(Data(digits.utf8), using: key, nonce: AES._CTR.Nonce(nonceBytes: iv))
        return (Data(iv) + ciphertext).base64EncodedString()
    }

    /// The plaintext of `base64(iv || ciphertext)` under `token`, or nil when it is not of that form.
    static func decrypt(_ encoded: String, token: String) -> String? {
        guard let data = Data(base64Encoded: encoded), data.count > 16 else { return nil }
        let key = SymmetricKey(data: SHA256.hash(data: Data(token.utf8)))
        guard let nonce = try? AES._CTR.Nonce(nonceBytes: data.prefix(16)),
            let plain = try? AES._CTR.decrypt(data.dropFirst(16), using: key, nonce: nonce)
        else { return nil }
        return String(data: plain, encoding: .utf8)
    }

    /// Nine ASCII digits once dashes and spaces are removed, else nil.
    static func normalize(_ ssn: String) -> String? {
        let digits = ssn.filter { $0 != "-" && $0 != " " }
        guard digits.count == 9, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return digits
    }
}
