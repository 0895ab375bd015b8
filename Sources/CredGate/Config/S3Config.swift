/// `endpoints.s3:` the bucket a listener's S3 links and signing route serve (see docs/configuration.md).
///
/// The endpoint and the keys are not here: the endpoint is the URL of the upstream of the route that carries the
/// `aws_sigv4` credential, and the keys are that credential's. This names only *what* may be reached: one bucket
/// (plus any `extra_buckets` the signing route may also reach), an optional key prefix that every link must stay
/// under, how links address the bucket, and how long links live.
struct S3Config: Sendable, Hashable {
    /// The bucket links are made for (`S3_BUCKET`).
    var bucket: String
    /// Further buckets the signing route may reach (links are only ever made for ``bucket``).
    var extraBuckets: [String] = []
    /// Every link's key starts with this (`uploads/`); "" for none. A link request naming a key outside it is a 422.
    var keyPrefix: String = ""
    /// How links name the bucket: `path` (`https://endpoint/bucket/key`) or `virtual` (`https://bucket.endpoint/key`).
    var addressing: AWSSigV4.S3AddressingStyle = .path
    /// A link's lifetime when the request does not say, in seconds (`link_lifetime`, default 15 minutes).
    var defaultLifetime: Int = 900
    /// The longest lifetime a request may ask for, in seconds (`max_link_lifetime`, at most S3's 7 days).
    var maximumLifetime: Int = AWSSigV4.maximumPresignedLifetime

    init(bucket: String) {
        self.bucket = bucket
    }

    /// Every bucket the signing route may reach.
    var reachableBuckets: Set<String> { Set([bucket] + extraBuckets) }
}
