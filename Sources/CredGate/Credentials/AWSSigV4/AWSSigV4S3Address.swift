extension AWSSigV4 {
    /// Where S3 (or an S3-compatible store) answers: `http(s)://host[:port]`.
    ///
    /// Parsed by hand rather than through Foundation's `URL`, which would normalise what it is given: the URL
    /// credgate writes keeps the authority exactly as configured (`:443` included, as botocore keeps it), while
    /// the signed `host` is lower-cased and leaves a default port out (botocore's `_host_from_url`).
    struct S3Endpoint: Sendable, Hashable, CustomStringConvertible {
        /// `http` or `https`.
        let scheme: String
        /// The host as written: a name, an IPv4 address, or an IPv6 address in brackets.
        let host: String
        /// The port when one is written, even the scheme's default.
        let port: Int?

        /// AWS's regional endpoint, `https://s3.<region>.amazonaws.com`. (botocore still uses the legacy global
        /// `s3.amazonaws.com` for us-east-1 unless told `us_east_1_regional_endpoint=regional`; the regional one
        /// works in every region.)
        static func aws(region: String) -> S3Endpoint {
            S3Endpoint(scheme: "https", host: "s3.\(region).amazonaws.com", port: nil)
        }

        init(scheme: String, host: String, port: Int?) {
            self.scheme = scheme.lowercased()
            self.host = host
            self.port = port
        }

        /// Parses `http(s)://host[:port]`, with one optional trailing `/`. Paths, queries, fragments and user
        /// info are refused: none of them has a meaning for an S3 endpoint, and silently dropping one would sign
        /// for a different place than the one configured.
        init(parsing text: String) throws(SigningError) {
            let lower = text.lowercased()
            let scheme: String
            if lower.hasPrefix("https://") {
                scheme = "https"
            } else if lower.hasPrefix("http://") {
                scheme = "http"
            } else {
                throw .invalidEndpoint(text)
            }
            var authority = text.dropFirst(scheme.count + 3)
            if authority.hasSuffix("/") { authority = authority.dropLast() }
            guard !authority.isEmpty, !authority.contains(where: { "/?#@ \t\r\n\\".contains($0) }) else {
                throw .invalidEndpoint(text)
            }
            var host = authority
            var port: Int?
            // `[v6]:port`, `[v6]`, `name:port`, `name`
            if authority.hasPrefix("[") {
                guard let close = authority.firstIndex(of: "]") else { throw .invalidEndpoint(text) }
                host = authority[...close]
                let rest = authority[authority.index(after: close)...]
                if !rest.isEmpty {
                    guard rest.hasPrefix(":") else { throw .invalidEndpoint(text) }
                    port = try Self.port(rest.dropFirst(), text)
                }
            } else if let colon = authority.firstIndex(of: ":") {
                host = authority[..<colon]
                port = try Self.port(authority[authority.index(after: colon)...], text)
            }
            guard host.count > (host.hasPrefix("[") ? 2 : 0) else { throw .invalidEndpoint(text) }
            self.init(scheme: scheme, host: String(host), port: port)
        }

        private static func port(_ digits: Substring, _ text: String) throws(SigningError) -> Int {
            guard !digits.isEmpty, digits.count <= 5, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
                let value = Int(digits), (1...65_535).contains(value)
            else { throw .invalidEndpoint(text) }
            return value
        }

        /// Whether the host is an IPv6 literal or a dotted-quad IPv4 address rather than a name.
        var hostIsIPAddress: Bool {
            if host.hasPrefix("[") { return true }
            let parts = host.split(separator: ".", omittingEmptySubsequences: false)
            return parts.count == 4
                && parts.allSatisfy { (1...3).contains($0.count) && $0.allSatisfy { $0.isASCII && $0.isNumber } }
        }

        /// `host[:port]` as written, for URLs.
        var authority: String { port.map { "\(host):\($0)" } ?? host }

        /// The `host` header value that is signed: lower-case, with the port unless it is the scheme's default.
        var signedHost: String {
            let defaultPort = scheme == "https" ? 443 : 80
            return host.lowercased() + (port.map { $0 == defaultPort ? "" : ":\($0)" } ?? "")
        }

        var description: String { "\(scheme)://\(authority)" }
    }

    /// How a bucket is named in a request ("Virtual hosting of buckets" in the S3 user guide).
    enum S3AddressingStyle: String, Sendable, Hashable {
        /// `https://s3.<region>.amazonaws.com/<bucket>/<key>`: works for every bucket name and every
        /// S3-compatible store, and is what credgate's own signing route receives.
        case path
        /// `https://<bucket>.s3.<region>.amazonaws.com/<key>`: AWS's preferred form; needs a DNS-compatible
        /// bucket name.
        case virtualHost = "virtual"
    }

    /// A bucket and key turned into the three things a request needs: the URL's origin, the `host` to sign, and
    /// the encoded path, which is sent and signed as is.
    struct S3ObjectAddress: Sendable, Hashable, CustomStringConvertible {
        /// `http` or `https`.
        let scheme: String
        /// `host[:port]` as it goes in the URL (the endpoint's, with `<bucket>.` in front for virtual-host style).
        let authority: String
        /// The `host` header value that is signed (see ``S3Endpoint/signedHost``).
        let host: String
        /// The request path, percent-encoded: `/<bucket>/<key>` or `/<key>`; a key's slashes stay, everything
        /// else outside RFC 3986's unreserved set is encoded (botocore's `percent_encode(key, safe="/~")`). An
        /// empty key addresses the bucket itself: `/<bucket>` path-style, `/` virtual-host style.
        let path: String

        /// Addresses `key` in `bucket` at `endpoint`.
        ///
        /// Virtual-host style follows botocore's rule for when a bucket can be a host name
        /// (`isVirtualHostableS3Bucket` in S3's endpoint rules): 3 to 63 characters, lower-case letters, digits and
        /// `-`, labels not starting or ending with `-`, not an IPv4 address, and dots only over plain http (over
        /// https a dotted bucket would not match the wildcard certificate); and the endpoint must be a host name,
        /// not an IP address. botocore silently falls back to path-style otherwise; this throws instead, so that a
        /// configuration that asks for virtual-host style finds out at start-up.
        init(endpoint: S3Endpoint, bucket: String, key: String, style: S3AddressingStyle)
            throws(SigningError)
        {
            guard !bucket.isEmpty, !bucket.contains("/") else { throw .invalidBucket(bucket) }
            let encodedKey = uriEncode(key, keepingSlashes: true)
            scheme = endpoint.scheme
            switch style {
            case .path:
                authority = endpoint.authority
                host = endpoint.signedHost
                path = "/" + uriEncode(bucket) + (key.isEmpty ? "" : "/" + encodedKey)
            case .virtualHost:
                guard !endpoint.hostIsIPAddress else { throw .virtualHostOnIPAddress(endpoint.host) }
                guard Self.isVirtualHostable(bucket, allowingDots: endpoint.scheme == "http") else {
                    throw .bucketNotVirtualHostable(bucket)
                }
                authority = bucket + "." + endpoint.authority
                host = bucket + "." + endpoint.signedHost
                path = "/" + encodedKey
            }
        }

        /// `scheme://authority`, the part of a URL before the path.
        var origin: String { scheme + "://" + authority }

        /// The URL without a query.
        var description: String { origin + path }

        static func isVirtualHostable(_ bucket: String, allowingDots: Bool) -> Bool {
            let bytes = Array(bucket.utf8)
            guard (3...63).contains(bytes.count) else { return false }
            let labels = bytes.split(separator: UInt8(ascii: "."), omittingEmptySubsequences: false)
            guard allowingDots || labels.count == 1 else { return false }
            let isDigitOrDot = { (b: UInt8) in
                b == UInt8(ascii: ".") || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b)
            }
            if labels.count == 4, bytes.allSatisfy(isDigitOrDot), labels.allSatisfy({ (1...3).contains($0.count) }) {
                return false // looks like an IPv4 address
            }
            return labels.allSatisfy { label in
                guard let first = label.first, let last = label.last, first != UInt8(ascii: "-"),
                    last != UInt8(ascii: "-")
                else { return false }
                return label.allSatisfy { b in
                    b == UInt8(ascii: "-") || (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(b)
                        || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b)
                }
            }
        }
    }
}
