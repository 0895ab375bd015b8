extension AWSSigV4 {
    /// What SigV4 signs with: a key pair, the session token that comes with temporary credentials, and the
    /// region and service of the credential scope (`<date>/<region>/<service>/aws4_request`).
    ///
    /// The secret key and the session token are ``Secret``s, so printing or dumping a value of this type shows
    /// `<redacted>` for both; the access key id is printed, as AWS itself prints it in CloudTrail and error
    /// messages (it names the key, it does not prove anything).
    struct Credentials: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible,
        CustomReflectable
    {
        /// `AKIA...` for a long-term key, `ASIA...` for temporary credentials.
        let accessKeyID: String
        let secretAccessKey: Secret
        /// Present for temporary credentials (STS, SSO, instance roles): sent as `X-Amz-Security-Token`, without
        /// which AWS rejects the signature.
        let sessionToken: Secret?
        /// The bucket's region, e.g. `eu-west-1`: part of the scope, so a signature for one region is refused
        /// by every other.
        let region: String
        /// `s3` for S3 and every S3-compatible store.
        let service: String

        init(
            accessKeyID: String, secretAccessKey: Secret, sessionToken: Secret? = nil, region: String,
            service: String = "s3"
        ) {
            self.accessKeyID = accessKeyID
            self.secretAccessKey = secretAccessKey
            self.sessionToken = sessionToken
            self.region = region
            self.service = service
        }

        /// `<yyyyMMdd>/<region>/<service>/aws4_request` for a request signed at `timestamp`
        /// ("Create a string to sign": the credential scope).
        func scope(at timestamp: Timestamp) -> String {
            AWSSigV4.credentialScope(date: timestamp.scopeDate, region: region, service: service)
        }

        /// The key that signs every request of `timestamp`'s UTC day in this region and service.
        func signingKey(at timestamp: Timestamp) -> SigningKey {
            AWSSigV4.signingKey(secret: secretAccessKey, date: timestamp.scopeDate, region: region, service: service)
        }

        var description: String {
            "AWSSigV4.Credentials(accessKeyID: \(accessKeyID), secretAccessKey: <redacted>, sessionToken: "
                + (sessionToken == nil ? "none" : "<redacted>") + ", region: \(region), service: \(service))"
        }

        var debugDescription: String { description }

        /// Children that cannot reveal anything, for `dump` and debuggers.
        var customMirror: Mirror {
            Mirror(
                self,
                children: [
                    "accessKeyID": accessKeyID, "secretAccessKey": secretAccessKey,
                    "sessionToken": sessionToken as Any, "region": region, "service": service,
                ], displayStyle: .struct)
        }
    }
}
