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
            environment: ["ASSURED_BASE_URL": server.baseURL, "ASSURED_API_KEY": key, "ASSURED_USER": user, "ASSURED_PASS": password],
            unset: ["ASSURED_API_KEY_FILE", "ASSURED_USER_FILE", "ASSURED_PASS_FILE"],
            example: "/api/v1/users/providers-list/",
            shutdown: { try await server.shutdown() })
    }

    /// Every platform emulator this build has, started.
    public static func startPlatforms() async throws -> [SandboxPlatform] {
        [try await startAssuredPlatform()]
    }
}
