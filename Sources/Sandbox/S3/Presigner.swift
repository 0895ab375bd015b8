import Crypto

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// Makes and checks the sandbox's presigned object URLs.
///
/// The URLs have the exact query shape boto3 gives real S3 links, so a client that reads expiries from them (a
/// presign cache) sees what it would see in production. The signature itself is simpler than AWS's: an
/// HMAC-SHA256 (SigV4 form) or HMAC-SHA1 (SigV2 form, the same length as AWS's) with a secret that exists only in
/// this process, over the method, the object's path and the other query parameters. Nothing outside the sandbox
/// can make one, and any change to the path, the date, the lifetime or the key id breaks it.
struct Presigner: Sendable {
    /// Region named in SigV4 credential scopes (the platform's bucket is in us-east-2).
    static let region = "us-east-2"
    static let algorithm = "AWS4-HMAC-SHA256"
    /// Where stored objects are served: `/sandbox-s3/<bucket>/<key>`.
    static let pathPrefix = "/sandbox-s3/"
    /// S3's longest SigV4 lifetime (7 days).
    static let maximumLifetime = 604_800

    let accessKeyID: String
    private let secret = SymmetricKey(size: .bits256)

    init(accessKeyID: String) {
        self.accessKeyID = accessKeyID
    }

    /// `/sandbox-s3/<bucket>/<key>`, the key encoded as botocore encodes it (`/` kept).
    static func path(bucket: String, key: String) -> String {
        pathPrefix + S3Encoding.encode(bucket) + "/" + S3Encoding.encode(key, keepSlash: true)
    }

    /// A URL for the object, valid `lifetime` seconds from `now` (whole seconds since the epoch): a GET unless
    /// `method` says otherwise. `subresources` (S3's `partNumber`, `uploadId`) come first in the query and are
    /// signed; `signedHeaders` (lower-case names and the exact values the request must carry, e.g.
    /// `content-length`, `content-type`) are signed too (SigV4 only), as botocore signs them when told to.
    func url(
        origin: String, bucket: String, key: String, form: PresignForm, lifetime: Int, now: Int,
        method: String = "GET", subresources: [(String, String)] = [], signedHeaders: [(String, String)] = []
    ) -> String {
        let path = Self.path(bucket: bucket, key: key)
        switch form {
        case .v4:
            let names = (signedHeaders.map(\.0) + ["host"]).sorted().joined(separator: ";")
            let parameters =
                subresources + [
                    ("X-Amz-Algorithm", Self.algorithm),
                    (
                        "X-Amz-Credential",
                        "\(accessKeyID)/\(S3Encoding.scopeDate(epochSeconds: now))/\(Self.region)/s3/aws4_request"
                    ),
                    ("X-Amz-Date", S3Encoding.amzDate(epochSeconds: now)),
                    ("X-Amz-Expires", String(lifetime)),
                    ("X-Amz-SignedHeaders", names),
                ]
            let signature = v4Signature(method: method, path: path, parameters: parameters, headers: signedHeaders)
            return origin + path + "?" + Self.queryString(parameters + [("X-Amz-Signature", signature)])
        case .v2:
            let expires = String(now + lifetime)
            // boto3's order: key id, signature, expiry.
            return origin + path + "?"
                + Self.queryString(
                    subresources + [
                        ("AWSAccessKeyId", accessKeyID),
                        ("Signature", v2Signature(method: method, path: path, expires: expires)),
                        ("Expires", expires),
                    ])
        }
    }

    /// What a request for `/sandbox-s3/<bucket>/<key>` with these (decoded) query parameters is allowed.
    enum Verdict: Equatable {
        case valid
        /// No query authentication at all.
        case anonymous
        /// A signature missing or not this sandbox's.
        case signatureMismatch
        /// A key id that is not this sandbox's.
        case unknownAccessKey
        /// Parameters S3 would refuse as malformed (400), with S3's message.
        case malformed(String)
        /// Signed correctly but past its expiry: the lifetime it was given (SigV4 only) and when it ended.
        case expired(lifetime: Int?, expiredAt: Int)
    }

    /// Checks a signature first and the expiry second, as S3 does: a URL whose lifetime was edited to outlive its
    /// expiry is a signature mismatch, not an expired link. `now` is seconds since the epoch.
    ///
    /// `method` is the request's; `headers` gives the value a request carries for a lower-case header name (nil
    /// when absent), for the names a SigV4 URL lists in `X-Amz-SignedHeaders` besides `host`.
    func verify(
        bucket: String, key: String, parameters: [QueryParameter], now: Double,
        method: String = "GET", headers: (String) -> String? = { _ in nil }
    ) -> Verdict {
        let path = Self.path(bucket: bucket, key: key)
        /// The value of a parameter given exactly once; nil when absent or repeated.
        func single(_ name: String) -> String? {
            let values = parameters.filter { $0.name == name }
            return values.count == 1 ? values[0].value : nil
        }
        if parameters.contains(where: { $0.name.hasPrefix("X-Amz-") }) {
            guard let algorithm = single("X-Amz-Algorithm"), let credential = single("X-Amz-Credential"),
                let date = single("X-Amz-Date"), let expires = single("X-Amz-Expires"),
                single("X-Amz-SignedHeaders") != nil
            else {
                return .malformed(
                    "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
                        + "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.")
            }
            guard algorithm == Self.algorithm else {
                return .malformed("X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"")
            }
            guard let signedAt = S3Encoding.epochSeconds(amzDate: date) else {
                return .malformed("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
            }
            guard let lifetime = Self.decimal(expires), (1...Self.maximumLifetime).contains(lifetime) else {
                return .malformed("X-Amz-Expires must be less than a week (in seconds) that is 604800")
            }
            guard
                credential.split(separator: "/", omittingEmptySubsequences: false).first.map(String.init) == accessKeyID
            else {
                return .unknownAccessKey
            }
            let signed = parameters.filter { $0.name != "X-Amz-Signature" }.map { ($0.name, $0.value) }
            let headerNames = single("X-Amz-SignedHeaders")!.split(separator: ";").map(String.init).filter {
                $0 != "host"
            }
            let signedHeaders = headerNames.map { ($0, headers($0) ?? "") }
            guard let given = single("X-Amz-Signature"),
                Self.equalInConstantTime(
                    given, v4Signature(method: method, path: path, parameters: signed, headers: signedHeaders))
            else {
                return .signatureMismatch
            }
            let end = signedAt + lifetime
            return now > Double(end) ? .expired(lifetime: lifetime, expiredAt: end) : .valid
        }
        if parameters.contains(where: { ["AWSAccessKeyId", "Signature", "Expires"].contains($0.name) }) {
            guard let keyID = single("AWSAccessKeyId"), let expires = single("Expires") else {
                return .signatureMismatch
            }
            guard keyID == accessKeyID else { return .unknownAccessKey }
            guard let given = single("Signature"),
                Self.equalInConstantTime(given, v2Signature(method: method, path: path, expires: expires)),
                let end = Self.decimal(expires) // signed, so what this sandbox wrote: digits
            else { return .signatureMismatch }
            return now > Double(end) ? .expired(lifetime: nil, expiredAt: end) : .valid
        }
        return .anonymous
    }

    /// Plain decimal digits only (no sign, no spaces), at most 15 of them.
    private static func decimal(_ text: String) -> Int? {
        guard !text.isEmpty, text.utf8.count <= 15,
            text.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) })
        else {
            return nil
        }
        return Int(text)
    }

    // MARK: Signatures

    /// Hex HMAC-SHA256 over the method, the encoded path and the parameters sorted by name (then value), each
    /// encoded (the order they arrive in does not matter, every one of them does), then any signed headers as
    /// `name:value` lines sorted by name.
    private func v4Signature(
        method: String, path: String, parameters: [(String, String)], headers: [(String, String)] = []
    ) -> String {
        let encoded: [(name: String, value: String)] = parameters.map {
            (S3Encoding.encode($0.0), S3Encoding.encode($0.1))
        }
        let sorted = encoded.sorted { a, b in a.name == b.name ? a.value < b.value : a.name < b.name }
        let canonical = sorted.map { $0.name + "=" + $0.value }.joined(separator: "&")
        var text = "\(method)\n\(path)\n\(canonical)"
        for (name, value) in headers.sorted(by: { $0.0 < $1.0 }) {
            text += "\n\(name):\(value.trimmingASCIIWhitespace())"
        }
        return Array(HMAC<SHA256>.authenticationCode(for: Array(text.utf8), using: secret)).hexString
    }

    /// Base64 HMAC-SHA1 over SigV2's string to sign (`<method>\n\n\n<Expires>\n<path>`).
    private func v2Signature(method: String, path: String, expires: String) -> String {
        let text = "\(method)\n\n\n\(expires)\n\(path.dropFirst(Self.pathPrefix.count - 1))"
        return Data(HMAC<Insecure.SHA1>.authenticationCode(for: Array(text.utf8), using: secret)).base64EncodedString()
    }

    /// `name=value&...` with both sides encoded strictly (`/` as `%2F`, `+` and `=` of base64 escaped).
    private static func queryString(_ parameters: [(String, String)]) -> String {
        parameters.map { S3Encoding.encode($0.0) + "=" + S3Encoding.encode($0.1) }.joined(separator: "&")
    }

    private static func equalInConstantTime(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        guard x.count == y.count else { return false }
        var difference: UInt8 = 0
        for (p, q) in zip(x, y) { difference |= p ^ q }
        return difference == 0
    }
}
