import Foundation

/// What a platform's emulator provides to a gateway started with `credgate serve --sandbox`: which upstream of
/// the configuration it stands in for, and the environment variables (the platform SDK's own names) that make
/// the configuration's credentials work against it. The command line knows no platform by name: it starts every
/// sandbox platform and applies what each provides.
public struct SandboxPlatform: Sendable {
    /// The upstream (by name in the configuration) this emulator replaces.
    public let upstream: String
    /// The emulator's base URL.
    public let baseURL: String
    /// Variables to set for the configuration (`${VAR}` references), e.g. the generated API key.
    public let environment: [String: String]
    /// Variables to unset so the ones above win (`*_FILE` forms of them).
    public let unset: [String]
    /// A path worth trying first with curl.
    public let example: String
    /// Stops the emulator.
    public let shutdown: @Sendable () async throws -> Void
}

extension SandboxServer {
    /// Starts the Assured emulator with a generated API key and password, and says what it provides.
    public static func startAssuredPlatform() async throws -> SandboxPlatform {
        let key = "sandbox-" + UUID().uuidString.lowercased()
        let password = "sandbox-" + UUID().uuidString.lowercased()
        let user = "provider-admin@example.com"
        let server = try await SandboxServer.start(SandboxOptions(apiKey: key, user: user, password: password))
        return SandboxPlatform(
            upstream: "assured", baseURL: server.baseURL,
            environment: [
                "ASSURED_BASE_URL": server.baseURL, "ASSURED_API_KEY": key, "ASSURED_USER": user,
                "ASSURED_PASS": password,
            ],
            unset: ["ASSURED_API_KEY_FILE", "ASSURED_USER_FILE", "ASSURED_PASS_FILE"],
            example: "/api/v1/users/providers-list/",
            shutdown: { try await server.shutdown() })
    }

    /// Starts the WriftAI emulator with a generated bearer token, and says what it provides: the SDK's own
    /// variables, `WRIFTAI_API_BASE_URL` (the emulator's `/v1`) and `WRIFTAI_ACCESS_TOKEN`.
    public static func startWriftAIPlatform() async throws -> SandboxPlatform {
        let token = "sandbox-" + UUID().uuidString.lowercased()
        let server = try await WriftAISandboxServer.start(WriftAISandboxOptions(accessToken: token))
        return SandboxPlatform(
            upstream: "wriftai", baseURL: server.apiBaseURL,
            environment: ["WRIFTAI_API_BASE_URL": server.apiBaseURL, "WRIFTAI_ACCESS_TOKEN": token],
            unset: ["WRIFTAI_ACCESS_TOKEN_FILE"],
            example: "/v1/models",
            shutdown: { try await server.shutdown() })
    }

    /// Starts the S3 emulator (one bucket, a generated key pair) and says what it provides: the AWS variables
    /// `Config/s3.yaml` reads, `S3_ENDPOINT_URL` and `S3_BUCKET`.
    public static func startS3Platform() async throws -> SandboxPlatform {
        let server = try await S3SandboxServer.start()
        return SandboxPlatform(
            upstream: "s3", baseURL: server.baseURL,
            environment: [
                "S3_ENDPOINT_URL": server.baseURL, "S3_BUCKET": server.bucket, "AWS_ACCESS_KEY_ID": server.accessKeyID,
                "AWS_SECRET_ACCESS_KEY": server.secretAccessKey, "AWS_REGION": server.region, "AWS_SESSION_TOKEN": "",
            ],
            unset: [
                "AWS_ACCESS_KEY_ID_FILE", "AWS_SECRET_ACCESS_KEY_FILE", "AWS_SESSION_TOKEN_FILE", "AWS_REGION_FILE",
            ],
            example: "/credgate/v1/s3/download/example.txt",
            shutdown: { try await server.shutdown() })
    }

    /// The platform emulators this build has, by the upstream name each stands in for, in start order.
    public static let platformStarters: [(upstream: String, start: @Sendable () async throws -> SandboxPlatform)] = [
        ("assured", { try await startAssuredPlatform() }),
        ("wriftai", { try await startWriftAIPlatform() }),
        ("s3", { try await startS3Platform() }),
    ]

    /// Starts the platform emulators whose upstream names are in `upstreams` (nil: every one this build has), in
    /// a fixed order (Assured first). Names this build has no emulator for are ignored. If one fails to start, the
    /// ones already started are stopped and the error is thrown.
    public static func startPlatforms(upstreams: Set<String>? = nil) async throws -> [SandboxPlatform] {
        var started: [SandboxPlatform] = []
        for (upstream, start) in platformStarters where upstreams?.contains(upstream) ?? true {
            do {
                started.append(try await start())
            } catch {
                for platform in started { try? await platform.shutdown() }
                throw error
            }
        }
        return started
    }
}
