import Foundation
import Sandbox
import Testing

/// `credgate doctor` against the sandbox: a wrong key and a wrong password each reported on their own row, exit 1,
/// and never a secret in the output.
@Suite struct DoctorCommandTests {
    static let key = "doctor-key-4b1f09"
    static let password = "doctor-password-77e2"
    static let user = "doctor@example.com"

    static func withSandbox(_ body: (SandboxServer) async throws -> Void) async throws {
        let sandbox = try await SandboxServer.start(SandboxOptions(apiKey: key, user: user, password: password))
        do {
            try await body(sandbox)
        } catch {
            try? await sandbox.shutdown()
            throw error
        }
        try await sandbox.shutdown()
    }

    static func doctor(_ sandbox: SandboxServer, key: String = key, password: String = password) async throws
        -> CommandRunner.Result
    {
        try await CommandRunner.run(
            ["doctor", "--config", "Config/credgate.yaml"],
            environment: [
                "ASSURED_BASE_URL": sandbox.baseURL, "ASSURED_API_KEY": key, "ASSURED_USER": user,
                "ASSURED_PASS": password,
            ])
    }

    /// The table row of `credential`.
    static func row(_ output: String, _ credential: String) -> String? {
        output.split(separator: "\n").first { $0.hasPrefix(credential + " ") }.map(String.init)
    }

    @Test func everyCredentialWorks() async throws {
        try await Self.withSandbox { sandbox in
            let result = try await Self.doctor(sandbox)
            #expect(result.code == 0, "\(result.output)")
            #expect(Self.row(result.output, "assured_key")?.contains(" ok ") == true, "\(result.output)")
            #expect(Self.row(result.output, "assured_key")?.contains("200") == true)
            #expect(Self.row(result.output, "assured_session")?.contains(" ok ") == true, "\(result.output)")
            #expect(result.output.contains("2 of 2 credential(s) work"))
        }
    }

    @Test func aWrongKeyAndAWrongPasswordAreEachReported() async throws {
        try await Self.withSandbox { sandbox in
            let wrongKey = try await Self.doctor(sandbox, key: "not-the-key-9c1d")
            #expect(wrongKey.code == 1)
            let keyRow = try #require(Self.row(wrongKey.output, "assured_key"), "\(wrongKey.output)")
            #expect(keyRow.contains("FAILED") && keyRow.contains("401") && keyRow.contains("refused the credential"))
            #expect(!wrongKey.output.contains("not-the-key-9c1d"))

            let wrongPassword = try await Self.doctor(sandbox, password: "not-the-password-31aa")
            #expect(wrongPassword.code == 1)
            let sessionRow = try #require(Self.row(wrongPassword.output, "assured_session"), "\(wrongPassword.output)")
            #expect(sessionRow.contains("FAILED") && sessionRow.contains("login answered"))
            #expect(Self.row(wrongPassword.output, "assured_key")?.contains(" ok ") == true)
            #expect(!wrongPassword.output.contains("not-the-password-31aa"))
            #expect(!wrongPassword.output.contains(Self.key))
            #expect(!wrongPassword.output.contains("eyJ"), "no token")
        }
    }

    @Test func theSandboxFlagChecksEveryPlatformOfTheConfig() async throws {
        let result = try await CommandRunner.run(["doctor", "--sandbox", "--config", "Config/examples/combined.yaml"])
        #expect(result.code == 0, "\(result.output)")
        #expect(Self.row(result.output, "assured_key")?.contains(" ok ") == true, "\(result.output)")
        #expect(Self.row(result.output, "wriftai_token")?.contains(" ok ") == true, "\(result.output)")
    }
}
