import Crypto
import Foundation

extension AWSSigV4 {
    /// The derived key of one day, region and service ("Calculate the signature", step 1):
    /// `HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request")`.
    ///
    /// It is as good as the secret for that scope, so it is kept opaque: no description shows its bytes.
    struct SigningKey: Sendable, CustomStringConvertible {
        let key: SymmetricKey

        /// The raw 32 bytes, for tests against published values.
        func bytes() -> [UInt8] { key.withUnsafeBytes { Array($0) } }

        var description: String { "<redacted>" }
    }

    /// `<yyyyMMdd>/<region>/<service>/aws4_request` ("Create a string to sign": the credential scope).
    static func credentialScope(date: String, region: String, service: String) -> String {
        date + "/" + region + "/" + service + "/aws4_request"
    }

    /// The string to sign ("Create a string to sign"): algorithm, `X-Amz-Date`, scope and the hex SHA-256 of
    /// the canonical request, one per line.
    static func stringToSign(timestamp: Timestamp, scope: String, canonicalRequest: String) -> String {
        algorithm + "\n" + timestamp.amzDate + "\n" + scope + "\n" + hexSHA256(Array(canonicalRequest.utf8))
    }

    /// Derives the signing key for `date` (`yyyyMMdd`), `region` and `service` from the secret access key.
    static func signingKey(secret: Secret, date: String, region: String, service: String) -> SigningKey {
        var key = SymmetricKey(data: Array(("AWS4" + secret.reveal()).utf8))
        for part in [date, region, service, "aws4_request"] {
            key = SymmetricKey(data: HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key))
        }
        return SigningKey(key: key)
    }

    /// The signature: hex HMAC-SHA256 of the string to sign under the signing key ("Calculate the signature").
    static func signature(stringToSign: String, signingKey: SigningKey) -> String {
        hexLowercase(HMAC<SHA256>.authenticationCode(for: Array(stringToSign.utf8), using: signingKey.key))
    }

    /// Lower-case hex SHA-256, the form of `x-amz-content-sha256` and of the canonical request's hash.
    static func hexSHA256(_ bytes: some Sequence<UInt8>) -> String {
        let digest =
            bytes.withContiguousStorageIfAvailable { SHA256.hash(data: UnsafeRawBufferPointer($0)) }
            ?? SHA256.hash(data: Array(bytes))
        return hexLowercase(digest)
    }

    static func hexLowercase(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
