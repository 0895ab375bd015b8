import Foundation

extension AWSSigV4 {
    /// What S3 is told the body hashes to (`x-amz-content-sha256`), which is also the canonical request's last
    /// line.
    enum PayloadHash: Sendable, Hashable, CustomStringConvertible {
        /// `UNSIGNED-PAYLOAD`: the body is not covered by the signature. For streamed bodies, which would
        /// otherwise have to be read twice or held whole; TLS protects them in transit.
        case unsigned
        /// The lower-case hex SHA-256 of the whole body: S3 checks it and refuses a body that differs.
        case sha256(hex: String)

        /// The hash of `body`, for a body held whole.
        static func of(_ body: some Sequence<UInt8>) -> PayloadHash { .sha256(hex: hexSHA256(body)) }

        /// The hash of an empty body.
        static let empty = PayloadHash.sha256(hex: emptyPayloadSHA256)

        var description: String {
            switch self {
            case .unsigned: unsignedPayload
            case .sha256(let hex): hex
            }
        }
    }

    /// A request to sign with an `Authorization` header.
    struct SignableRequest: Sendable, Hashable {
        var method: String
        var address: S3ObjectAddress
        /// The query, decoded, in the order it is sent (see ``wireQuery(_:)``).
        var query: [QueryItem]
        /// The headers that go to S3, all of them signed except ``AWSSigV4/unsignedHeaderNames``. Any
        /// `Authorization`, `Host`, `X-Amz-Date`, `X-Amz-Content-SHA256` or `X-Amz-Security-Token` here is
        /// ignored: the signer writes those. The caller must send the ones it passes exactly as passed, and
        /// should leave out `Date` (S3 would read it only when `x-amz-date` is absent, which it never is here).
        var headers: [HeaderField]
        var payloadHash: PayloadHash

        init(
            method: String, address: S3ObjectAddress, query: [QueryItem] = [], headers: [HeaderField] = [],
            payloadHash: PayloadHash
        ) {
            self.method = method
            self.address = address
            self.query = query
            self.headers = headers
            self.payloadHash = payloadHash
        }

        /// `path?query` as it goes on the request line: what was signed, and nothing re-encoded.
        var requestTarget: String {
            query.isEmpty ? address.path : address.path + "?" + wireQuery(query)
        }
    }

    /// The headers a signed request carries besides its own: botocore's `S3SigV4Auth` writes `X-Amz-Date`,
    /// `X-Amz-Security-Token` (with temporary credentials), `X-Amz-Content-SHA256` and `Authorization`, in that
    /// order, and so does ``fields``. The request also needs `Host: ` ``S3ObjectAddress/host``.
    struct SignedRequestHeaders: Sendable, Hashable, CustomStringConvertible {
        /// `20130524T000000Z`.
        let amzDate: String
        let contentSHA256: String
        let securityToken: Secret?
        /// `AWS4-HMAC-SHA256 Credential=<key id>/<scope>, SignedHeaders=<names>, Signature=<hex>`.
        let authorization: String
        /// `host;range;x-amz-content-sha256;x-amz-date`.
        let signedHeaders: String

        /// The fields to add, in botocore's order and spelling (the session token revealed: it goes on the wire).
        var fields: [HeaderField] {
            var fields = [HeaderField("X-Amz-Date", amzDate)]
            if let securityToken { fields.append(HeaderField("X-Amz-Security-Token", securityToken.reveal())) }
            fields.append(HeaderField("X-Amz-Content-SHA256", contentSHA256))
            fields.append(HeaderField("Authorization", authorization))
            return fields
        }

        var description: String {
            "SignedRequestHeaders(x-amz-date: \(amzDate), x-amz-content-sha256: \(contentSHA256), "
                + "x-amz-security-token: \(securityToken == nil ? "none" : "<redacted>"), "
                + "signed headers: \(signedHeaders))"
        }
    }

    /// Signs `request` with `credentials` at `date` ("Signature Calculations for the Authorization Header"), byte
    /// for byte as botocore's `S3SigV4Auth`: the signed headers are the caller's (minus
    /// ``unsignedHeaderNames``) plus `host`, `x-amz-date`, `x-amz-content-sha256` and, with temporary
    /// credentials, `x-amz-security-token`.
    static func sign(_ request: SignableRequest, credentials: Credentials, at date: Date)
        -> SignedRequestHeaders
    {
        let timestamp = Timestamp(date)
        let contentSHA256 = request.payloadHash.description
        var headers = signableHeaders(request.headers, host: request.address.host)
        headers.append(HeaderField("x-amz-date", timestamp.amzDate))
        headers.append(HeaderField("x-amz-content-sha256", contentSHA256))
        if let token = credentials.sessionToken {
            headers.append(HeaderField("x-amz-security-token", token.reveal()))
        }
        let (canonicalHeaders, signedHeaders) = canonicalHeaders(headers)
        let canonical = canonicalRequest(
            method: request.method, path: request.address.path, canonicalQuery: canonicalQuery(request.query),
            canonicalHeaders: canonicalHeaders, signedHeaders: signedHeaders, payloadHash: contentSHA256)
        let scope = credentials.scope(at: timestamp)
        let toSign = stringToSign(timestamp: timestamp, scope: scope, canonicalRequest: canonical)
        let signature = signature(stringToSign: toSign, signingKey: credentials.signingKey(at: timestamp))
        return SignedRequestHeaders(
            amzDate: timestamp.amzDate, contentSHA256: contentSHA256, securityToken: credentials.sessionToken,
            authorization: "\(algorithm) Credential=\(credentials.accessKeyID)/\(scope), "
                + "SignedHeaders=\(signedHeaders), Signature=\(signature)",
            signedHeaders: signedHeaders)
    }
}
