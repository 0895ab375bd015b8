import Logging

/// How a ``SandboxServer`` listens and what it accepts.
public struct SandboxOptions: Sendable {
    /// The account every new sandbox accepts unless told otherwise, so a demo can log in without configuration.
    public static let defaultUsers = ["provider-admin@example.com": "correct horse battery staple"]

    /// Address to bind. Loopback by default: the sandbox is for tests and demos, never for a network.
    public var host = "127.0.0.1"
    /// Port to bind; 0 picks an ephemeral port (read it back from ``SandboxServer/port``).
    public var port = 0
    /// The only value of `x-api-key` accepted under `/api/v1/`.
    public var apiKey: String
    /// How many providers `GET /api/v1/users/providers-list/` pages through.
    public var providerCount = 57
    /// Log level of the sandbox and of the Hummingbird server under it. Quiet unless asked.
    public var logLevel: Logger.Level = .warning
    /// Origin (`scheme://host[:port]`) used in `next`/`previous` links instead of the request's `Host`,
    /// to mimic an upstream such as `https://demo-backend.withassured.com`. Nil: like Django, use `Host`.
    public var linkOrigin: String?
    /// Accounts `POST /api/v1/users/login/` accepts, email to password (emails compared exactly, as Django does).
    public var users: [String: String] = SandboxOptions.defaultUsers
    /// Lifetime of access tokens. The platform's is about 2.8 hours; tests use a few seconds to watch tokens lapse.
    /// Can be changed while running (``SandboxServer/setAccessLifetime(_:)``).
    public var accessLifetime: Duration = .seconds(10_080)
    /// Lifetime of refresh tokens (simplejwt's default: one day).
    public var refreshLifetime: Duration = .seconds(86_400)
    /// Bucket that uploads are stored in (`s3://<bucket>/<uuid>-<name>`), served under `/sandbox-s3/<bucket>/`.
    public var bucket = "assured-sandbox-files"
    /// Lifetime written into presigned URLs (whole seconds, 1 to 604800; boto3's default is 3600).
    /// Can be changed while running (``SandboxServer/setPresign(lifetime:form:delay:)`` or `POST /sandbox/presign`).
    public var presignLifetime: Duration = .seconds(3_600)
    /// The query form of presigned URLs: SigV4 as boto3 makes them in most regions, or the older SigV2.
    public var presignForm: PresignForm = .v4
    /// Access key id named in presigned URLs. Not a secret: real URLs carry it in the clear.
    public var presignAccessKeyID = "AKIASANDBOXEXAMPLE42"
    /// Largest upload body `POST /api/v1/files/handle/` stores (the whole multipart body); larger ones get 413.
    /// Uploads are held in memory.
    public var maxUploadBytes = 256 * 1024 * 1024

    public init(apiKey: String, host: String = "127.0.0.1", port: Int = 0) {
        self.apiKey = apiKey
        self.host = host
        self.port = port
    }

    /// Options with a single login account instead of the default one (what `credgate serve --sandbox` needs
    /// to accept the `ASSURED_USER`/`ASSURED_PASS` it was given).
    public init(apiKey: String, host: String = "127.0.0.1", port: Int = 0, user: String, password: String) {
        self.init(apiKey: apiKey, host: host, port: port)
        self.users = [user: password]
    }
}

extension SandboxOptions: CustomStringConvertible {
    /// Never shows the key or a password.
    public var description: String {
        "SandboxOptions(host: \(host), port: \(port), apiKey: <redacted>, providerCount: \(providerCount), "
            + "users: \(users.keys.sorted()) (passwords redacted), accessLifetime: \(accessLifetime), "
            + "refreshLifetime: \(refreshLifetime), bucket: \(bucket), presignLifetime: \(presignLifetime), "
            + "presignForm: \(presignForm.rawValue), maxUploadBytes: \(maxUploadBytes))"
    }
}

/// How presigned URLs are signed, as S3 clients make them.
public enum PresignForm: String, Sendable, Codable, CaseIterable {
    /// `X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=...&X-Amz-Date=...&X-Amz-Expires=...&X-Amz-SignedHeaders=host&X-Amz-Signature=...`
    case v4
    /// `AWSAccessKeyId=...&Signature=...&Expires=<unix epoch>`
    case v2
}
