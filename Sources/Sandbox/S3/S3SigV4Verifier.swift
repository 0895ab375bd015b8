import Crypto

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The S3 emulator's check of AWS Signature Version 4, as S3 does it: the `Authorization` header form and the
/// presigned query form, with AWS's canonical request (method, path as sent, sorted RFC 3986-encoded query, the
/// signed headers trimmed and joined, payload hash). Its own implementation, independent of credgate's signer, and
/// checked against botocore-signed requests (`Tests/CredGateTests/Vectors/sigv4.json`).
struct S3SigV4Verifier: Sendable {
    let accessKeyID: String
    let secretAccessKey: String
    let region: String
    /// S3 refuses a header-signed request whose `x-amz-date` is more than 15 minutes away from its clock.
    static let allowedSkew = 900

    enum Verdict: Equatable {
        case valid(payloadHash: String)
        case anonymous
        case signatureMismatch
        case unknownAccessKey
        case malformed(String)
        case expired(lifetime: Int, expiredAt: Int)
        case skewed
    }

    /// `headers(name)` gives every value of a lower-case header name (`host` included).
    func verify(method: String, path: String, parameters: [QueryParameter], headers: (String) -> [String], now: Int)
        -> Verdict
    {
        if let authorization = headers("authorization").first {
            return verifyHeader(
                authorization, method: method, path: path, parameters: parameters, headers: headers, now: now)
        }
        if parameters.contains(where: { $0.name == "X-Amz-Signature" || $0.name == "X-Amz-Algorithm" }) {
            return verifyQuery(method: method, path: path, parameters: parameters, headers: headers, now: now)
        }
        return .anonymous
    }

    private func verifyHeader(
        _ authorization: String, method: String, path: String, parameters: [QueryParameter],
        headers: (String) -> [String], now: Int
    ) -> Verdict {
        guard authorization.hasPrefix("AWS4-HMAC-SHA256 ") else { return .malformed("Unsupported Authorization Type") }
        var fields: [String: String] = [:]
        for part in authorization.dropFirst("AWS4-HMAC-SHA256 ".count).split(separator: ",") {
            let kv = part.trimmingCharacters(in: .whitespaces).split(separator: "=", maxSplits: 1)
            if kv.count == 2 { fields[String(kv[0])] = String(kv[1]) }
        }
        guard let credential = fields["Credential"], let signedHeaders = fields["SignedHeaders"],
            let signature = fields["Signature"],
            let date = headers("x-amz-date").first, let signedAt = S3Encoding.epochSeconds(amzDate: date),
            let payloadHash = headers("x-amz-content-sha256").first
        else { return .malformed("The authorization header is malformed") }
        guard let scope = checkScope(credential, date: date) else { return .unknownAccessKey }
        guard abs(now - signedAt) <= Self.allowedSkew else { return .skewed }
        let expected = sign(
            method: method, path: path, query: parameters, signedHeaders: signedHeaders, headers: headers,
            payloadHash: payloadHash, amzDate: date, scope: scope)
        return Self.equal(expected, signature) ? .valid(payloadHash: payloadHash) : .signatureMismatch
    }

    private func verifyQuery(
        method: String, path: String, parameters: [QueryParameter], headers: (String) -> [String], now: Int
    ) -> Verdict {
        func single(_ name: String) -> String? {
            let values = parameters.filter { $0.name == name }
            return values.count == 1 ? values[0].value : nil
        }
        guard single("X-Amz-Algorithm") == "AWS4-HMAC-SHA256", let credential = single("X-Amz-Credential"),
            let date = single("X-Amz-Date"), let signedAt = S3Encoding.epochSeconds(amzDate: date),
            let expiresText = single("X-Amz-Expires"), let lifetime = Int(expiresText),
            (1...604_800).contains(lifetime),
            let signedHeaders = single("X-Amz-SignedHeaders"), let signature = single("X-Amz-Signature")
        else {
            return .malformed(
                "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, "
                    + "X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.")
        }
        guard let scope = checkScope(credential, date: date) else { return .unknownAccessKey }
        let expected = sign(
            method: method, path: path, query: parameters.filter { $0.name != "X-Amz-Signature" },
            signedHeaders: signedHeaders, headers: headers, payloadHash: "UNSIGNED-PAYLOAD", amzDate: date, scope: scope
        )
        guard Self.equal(expected, signature) else { return .signatureMismatch }
        return now > signedAt + lifetime
            ? .expired(lifetime: lifetime, expiredAt: signedAt + lifetime) : .valid(payloadHash: "UNSIGNED-PAYLOAD")
    }

    /// `<key id>/<date>/<region>/s3/aws4_request` naming this emulator's key, region and the request's date.
    private func checkScope(_ credential: String, date: String) -> String? {
        let parts = credential.split(separator: "/", omittingEmptySubsequences: false).map(String.init)
        guard parts.count == 5, parts[0] == accessKeyID, parts[1] == String(date.prefix(8)), parts[2] == region,
            parts[3] == "s3", parts[4] == "aws4_request"
        else { return nil }
        return parts[1...].joined(separator: "/")
    }

    /// The hex signature of a request: canonical request, string to sign, derived key.
    func sign(
        method: String, path: String, query: [QueryParameter], signedHeaders: String, headers: (String) -> [String],
        payloadHash: String, amzDate: String, scope: String
    ) -> String {
        let canonicalQuery = query.map { (S3Encoding.encode($0.name), S3Encoding.encode($0.value)) }
            .sorted {
                $0.0 == $1.0
                    ? $0.1.utf8.lexicographicallyPrecedes($1.1.utf8) : $0.0.utf8.lexicographicallyPrecedes($1.0.utf8)
            }
            .map { $0.0 + "=" + $0.1 }.joined(separator: "&")
        var canonicalHeaders = ""
        for name in signedHeaders.split(separator: ";").map(String.init) {
            canonicalHeaders += name + ":" + headers(name).map(Self.trimAll).joined(separator: ",") + "\n"
        }
        let canonical = [method, path, canonicalQuery, canonicalHeaders, signedHeaders, payloadHash].joined(
            separator: "\n")
        let toSign =
            "AWS4-HMAC-SHA256\n\(amzDate)\n\(scope)\n" + Array(SHA256.hash(data: Array(canonical.utf8))).hexString
        var key = SymmetricKey(data: Array(("AWS4" + secretAccessKey).utf8))
        for part in scope.split(separator: "/") {
            key = SymmetricKey(data: Array(HMAC<SHA256>.authenticationCode(for: Array(part.utf8), using: key)))
        }
        return Array(HMAC<SHA256>.authenticationCode(for: Array(toSign.utf8), using: key)).hexString
    }

    static func trimAll(_ value: String) -> String {
        value.split(whereSeparator: { $0 == " " || $0 == "\t" }).joined(separator: " ")
    }

    static func equal(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8)
        let y = Array(b.utf8)
        guard x.count == y.count else { return false }
        return zip(x, y).reduce(0) { $0 | ($1.0 ^ $1.1) } == 0
    }
}
