/// What a cached presign answer is filed under: the object and who asked.
///
/// The platform signs a URL for the logged-in user, so an answer is only ever reused for the same object *and* the
/// same identity: one user's URL is never served to a configuration acting as another. The identity is an opaque
/// string the caller composes from everything that changes what the platform would answer (for instance the
/// upstream, the credential's name and the session's user); it is compared, never parsed or logged.
struct PresignCacheKey: Sendable, Hashable, CustomStringConvertible {
    /// The object, as validated from the request's `s3_url`.
    let object: S3URI
    /// Whose session asked.
    let identity: String

    init(object: S3URI, identity: String) {
        self.object = object
        self.identity = identity
    }

    /// The object only: identities stay out of logs.
    var description: String { object.description }
}
