/// AWS Signature Version 4 for S3, as a handful of pure functions over strings.
///
/// Why its own module: credgate holds the AWS keys so that apps do not, which means it must mint presigned links
/// and sign proxied requests exactly as AWS checks them. One canonicalisation mistake (a `+` left unencoded, a
/// header value not trimmed) gives `SignatureDoesNotMatch` only for some keys, so everything here is checked byte
/// for byte against botocore (`Tests/CredGateTests/Vectors/sigv4.json`, made by `scripts/sigv4-vectors.py`).
///
/// The rules follow AWS's documentation and, where it leaves room, botocore's `S3SigV4Auth` and
/// `S3SigV4QueryAuth`:
/// - "Create a canonical request for Signature Version 4" (IAM user guide, "Elements of an AWS API request
///   signature"): method, canonical URI, canonical query string, canonical headers, signed headers, payload hash;
/// - "Authenticating Requests: Using Query Parameters (AWS Signature Version 4)" (S3 API reference):
///   presigned URLs, whose payload is always `UNSIGNED-PAYLOAD`;
/// - "Signature Calculations for the Authorization Header: Transferring Payload in a Single Chunk" (S3 API
///   reference): header signing with `x-amz-content-sha256`;
/// - S3's exceptions to the general rules: the path is neither normalised nor double-encoded.
///
/// Nothing here reads a clock, the environment or a global: time comes in as a `Date`, credentials as a value,
/// so every output is a function of its inputs and can be pinned by a test vector.
enum AWSSigV4 {
    /// The only algorithm SigV4 defines for S3.
    static let algorithm = "AWS4-HMAC-SHA256"

    /// The payload hash of a presigned URL (whose body nobody knows yet), and of a streamed upload that is not
    /// hashed before it is sent ("Signature Calculation: Transfer Payload in a Single Chunk" allows it).
    static let unsignedPayload = "UNSIGNED-PAYLOAD"

    /// SHA-256 of zero bytes, the payload hash of a bodiless request (GET, DELETE, HEAD).
    static let emptyPayloadSHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

    /// The longest `X-Amz-Expires` S3 accepts: 7 days, in seconds.
    static let maximumPresignedLifetime = 604_800

    /// Names botocore never signs (its `SIGNED_HEADERS_BLACKLIST`): hop-by-hop headers that a proxy between
    /// client and S3 may change, `User-Agent` (rewritten by some proxies) and `X-Amzn-Trace-Id` (added by AWS's
    /// own load balancers). Signing any of them would break the signature in transit, so they are left out here
    /// too, whatever the caller passes.
    static let unsignedHeaderNames: Set<String> = [
        "connection", "expect", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
        "transfer-encoding", "upgrade", "user-agent", "x-amzn-trace-id",
    ]

    /// Headers the signer itself writes (or derives from the address). A caller's own copies are dropped before
    /// signing, so a client behind the gateway can never slip its own token, date or signature through.
    static let signerOwnedHeaderNames: Set<String> = [
        "authorization", "host", "x-amz-content-sha256", "x-amz-date", "x-amz-security-token",
    ]
}

extension AWSSigV4 {
    /// Everything that can stop a request from being signed. Each case names the input at fault, never a secret.
    enum SigningError: Error, Sendable, Hashable, CustomStringConvertible {
        /// A presigned URL's lifetime must be 1 to 604800 seconds (S3 refuses anything else).
        case expiresOutOfRange(Int)
        /// The endpoint is not `http(s)://host[:port]` with an optional `/`.
        case invalidEndpoint(String)
        /// Virtual-host addressing needs a bucket name that is a DNS name (and has no dots over https, where the
        /// certificate `*.s3.<region>.amazonaws.com` would not cover it); use path-style for this bucket.
        case bucketNotVirtualHostable(String)
        /// Virtual-host addressing puts the bucket in front of the endpoint's host name, which an IP address does
        /// not have (botocore falls back to path-style there); use path-style for this endpoint.
        case virtualHostOnIPAddress(String)
        /// A bucket name must be non-empty and cannot contain `/`.
        case invalidBucket(String)

        var description: String {
            switch self {
            case .expiresOutOfRange(let seconds):
                "a presigned URL must expire in 1 to \(AWSSigV4.maximumPresignedLifetime) seconds, not \(seconds)"
            case .invalidEndpoint(let text):
                "'\(text)' is not an endpoint of the form http(s)://host[:port]"
            case .bucketNotVirtualHostable(let bucket):
                "bucket '\(bucket)' cannot be addressed virtual-host style (not a DNS name, or dots over https); use path-style"
            case .virtualHostOnIPAddress(let host):
                "virtual-host addressing needs an endpoint with a host name, not the address \(host); use path-style"
            case .invalidBucket(let bucket):
                "'\(bucket)' is not a bucket name"
            }
        }
    }
}
