import Foundation

extension AWSSigV4 {
    /// What a presigned URL grants: one method on one object, for `expires` seconds, with the headers the
    /// holder must send (an upload link's `content-type`) and the query parameters it must keep
    /// (`response-content-disposition`, `response-content-type`).
    struct PresignRequest: Sendable, Hashable {
        /// `GET`, `PUT`, `DELETE`, `HEAD`.
        var method: String
        var address: S3ObjectAddress
        /// Seconds from the signing time, 1 to ``AWSSigV4/maximumPresignedLifetime``.
        var expires: Int
        /// Headers signed into the URL besides `host`: whoever uses the link must send them with exactly these
        /// values (S3 answers 403 otherwise), which is how an upload link pins its `Content-Type`.
        var signedHeaders: [HeaderField]
        /// The operation's own parameters, written before the `X-Amz-*` ones in this order. Names must be
        /// unique (botocore keeps only the first value of a repeated name; S3's `response-*` never repeat).
        var query: [QueryItem]

        init(
            method: String, address: S3ObjectAddress, expires: Int, signedHeaders: [HeaderField] = [],
            query: [QueryItem] = []
        ) {
            self.method = method
            self.address = address
            self.expires = expires
            self.signedHeaders = signedHeaders
            self.query = query
        }
    }

    /// A presigned URL and what its holder needs to know to use it.
    struct PresignedURL: Sendable, Hashable, CustomStringConvertible {
        /// The complete URL. With temporary credentials it carries the session token: like the link itself, it
        /// is a bearer capability until it expires.
        let url: String
        let method: String
        /// When S3 stops honouring the URL: the signing time (whole seconds) plus `expires`.
        let expiresAt: Date
        /// The headers the holder must send as they are (everything signed but `host`).
        let requiredHeaders: [HeaderField]

        /// The URL without its query, so a log line cannot leak a usable link.
        var description: String {
            "\(method) " + (url.firstIndex(of: "?").map { String(url[..<$0]) } ?? url) + "?<signed>"
        }
    }

    /// Presigns `request` with `credentials` at `date`: query-string authentication ("Authenticating Requests:
    /// Using Query Parameters (AWS Signature Version 4)"), byte for byte as botocore's `generate_presigned_url`.
    ///
    /// The query is the operation's parameters in their order, then `X-Amz-Algorithm`, `X-Amz-Credential`,
    /// `X-Amz-Date`, `X-Amz-Expires`, `X-Amz-SignedHeaders`, `X-Amz-Security-Token` (with temporary
    /// credentials), all RFC 3986-encoded, then `X-Amz-Signature` last: it is computed over all the others, so
    /// it cannot be among them. The payload hash is `UNSIGNED-PAYLOAD`, because nobody knows the body when the
    /// link is made.
    static func presign(_ request: PresignRequest, credentials: Credentials, at date: Date)
        throws(SigningError) -> PresignedURL
    {
        guard (1...maximumPresignedLifetime).contains(request.expires) else {
            throw .expiresOutOfRange(request.expires)
        }
        let timestamp = Timestamp(date)
        let headers = signableHeaders(request.signedHeaders, host: request.address.host)
        let (canonicalHeaders, signedHeaders) = canonicalHeaders(headers)

        var pairs = request.query.map { (name: uriEncode($0.name), value: uriEncode($0.value ?? "")) }
        var authParameters = [
            ("X-Amz-Algorithm", algorithm),
            ("X-Amz-Credential", credentials.accessKeyID + "/" + credentials.scope(at: timestamp)),
            ("X-Amz-Date", timestamp.amzDate),
            ("X-Amz-Expires", String(request.expires)),
            ("X-Amz-SignedHeaders", signedHeaders),
        ]
        if let token = credentials.sessionToken {
            authParameters.append(("X-Amz-Security-Token", token.reveal()))
        }
        pairs += authParameters.map { (name: $0.0, value: uriEncode($0.1)) }

        let canonical = canonicalRequest(
            method: request.method, path: request.address.path, canonicalQuery: canonicalQuery(encoded: pairs),
            canonicalHeaders: canonicalHeaders, signedHeaders: signedHeaders, payloadHash: unsignedPayload)
        let toSign = stringToSign(
            timestamp: timestamp, scope: credentials.scope(at: timestamp), canonicalRequest: canonical)
        let signature = signature(stringToSign: toSign, signingKey: credentials.signingKey(at: timestamp))

        let query = pairs.map { $0.name + "=" + $0.value }.joined(separator: "&") + "&X-Amz-Signature=" + signature
        return PresignedURL(
            url: request.address.origin + request.address.path + "?" + query,
            method: request.method.uppercased(),
            expiresAt: timestamp.date.addingTimeInterval(TimeInterval(request.expires)),
            requiredHeaders: headers.filter { field in
                field.name != "host" && !unsignedHeaderNames.contains(field.name.lowercased())
            })
    }

    /// The caller's headers without the ones the signer owns (its `host` among them), plus the address's `host`.
    static func signableHeaders(_ fields: [HeaderField], host: String) -> [HeaderField] {
        var kept = fields.filter { !signerOwnedHeaderNames.contains($0.name.lowercased()) }
        kept.append(HeaderField("host", host))
        return kept
    }
}
