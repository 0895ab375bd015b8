import ArgumentParser
import AsyncHTTPClient
import CredGate
import Foundation
import Logging

/// `credgate doctor`: every credential checked against the real platform, as a table; exit 1 on any failure.
struct DoctorCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "doctor",
        abstract:
            "Check every credential against the platform (a login for sessions, the configured probe for keys); exits 1 if any fails."
    )

    @OptionGroup var configOptions: ConfigOptions

    @Flag(help: "Start the built-in platform emulators and check against them (to try the command).")
    var sandbox = false

    func run() async throws {
        var environment = ProcessInfo.processInfo.environment
        let platforms = sandbox ? try await SandboxLauncher.start(into: &environment) : []
        defer { Task { for platform in platforms { try? await platform.shutdown() } } }
        let config: GatewayConfig
        do {
            config = try ConfigLoader.load(paths: configOptions.resolvedPaths, environment: environment)
        } catch {
            printError("credgate doctor: \(error.issues.count) problem(s) in \(configOptions.shownPaths):")
            for issue in error.issues { printError("  \(issue)") }
            throw ExitCode(1)
        }
        var logger = Logger(label: "credgate.doctor")
        logger.logLevel = .critical // the table says it all; failures are not logged twice
        let client = HTTPClient(
            eventLoopGroupProvider: .singleton, configuration: AsyncHTTPSessionTransport.makeClientConfiguration())
        let results = await Doctor.run(
            config: SandboxLauncher.pointed(config, at: platforms),
            transport: { upstream in
                AsyncHTTPSessionTransport(upstream: upstream, client: client)
            }, logger: logger)
        try? await client.shutdown()
        for platform in platforms { try? await platform.shutdown() }

        let rows = results.map { r in
            [
                r.credential, r.kind, r.upstream, r.outcome.rawValue,
                r.elapsed.map {
                    "\(Int(($0.components.seconds * 1000) + $0.components.attoseconds / 1_000_000_000_000_000)) ms"
                } ?? "-",
                r.platformStatus.map(String.init) ?? "-", r.detail,
            ]
        }
        print(
            Table.render(header: ["CREDENTIAL", "KIND", "UPSTREAM", "RESULT", "TIME", "STATUS", "DETAIL"], rows: rows))
        let failed = results.filter { $0.outcome == .failed }.count
        if failed > 0 {
            print("\n\(failed) of \(results.count) credential(s) failed")
            throw ExitCode(1)
        }
        print("\n\(results.filter { $0.outcome == .ok }.count) of \(results.count) credential(s) work")
    }
}

/// Plain aligned columns, as `credgate status` prints them.
enum Table {
    static func render(header: [String], rows: [[String]]) -> String {
        let all = [header] + rows
        let widths = header.indices.map { i in all.map { $0[i].count }.max() ?? 0 }
        return all.map { row in
            row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }
            .joined(separator: "  ")
        }.joined(separator: "\n")
    }
}
