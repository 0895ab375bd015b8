import ArgumentParser
import AsyncHTTPClient
import CredGate
import Foundation
import NIOCore

/// `credgate status`: asks a running gateway for `/credgate/status` and prints it; never shows a secret
/// because the gateway never puts one there.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show a running gateway's credentials: kind, state, time to expiry, last refresh and error, counts.")

    @Option(help: "The gateway's address (env CREDGATE_URL; default http://127.0.0.1:8080, or CREDGATE_HOST/CREDGATE_PORT).")
    var url: String?

    @Flag(help: "Print the raw JSON.")
    var json = false

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        let base = url ?? env["CREDGATE_URL"]
            ?? "http://\(env["CREDGATE_HOST"].map { $0 == "0.0.0.0" ? "127.0.0.1" : $0 } ?? "127.0.0.1"):\(env["CREDGATE_PORT"] ?? "8080")"
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let body: ByteBuffer
        defer { _ = client.shutdown() }
        do {
            let response = try await client.execute(HTTPClientRequest(url: base + "/credgate/status"), timeout: .seconds(5))
            guard response.status == .ok else {
                printError("credgate status: \(base) answered \(response.status.code)")
                throw ExitCode(1)
            }
            body = try await response.body.collect(upTo: 1 << 20)
        } catch let error as ExitCode {
            throw error
        } catch {
            printError("credgate status: no gateway answering at \(base) (\(error))")
            throw ExitCode(1)
        }
        if json {
            say(String(buffer: body))
            return
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any] else {
            say(String(buffer: body))
            return
        }
        say("credgate \(object["version"] as? String ?? "?") at \(base), up \(object["uptime_seconds"] as? Int ?? 0) s")
        let rows = (object["credentials"] as? [[String: Any]]) ?? []
        let header = ["CREDENTIAL", "KIND", "STATE", "EXPIRES IN", "LAST REFRESH", "LOGINS", "REFRESHES", "FAILURES", "LAST ERROR"]
        var table = [header]
        for row in rows {
            func text(_ key: String) -> String {
                guard let value = row[key], !(value is NSNull) else { return "-" }
                return "\(value)"
            }
            let failures = (row["login_failures"] as? Int ?? 0) + (row["refresh_failures"] as? Int ?? 0)
            table.append([text("name"), text("kind"), text("state"), row["expires_in_seconds"].flatMap { $0 as? Int }.map { "\($0) s" } ?? "-",
                          text("last_refresh"), text("logins"), text("refreshes"), String(failures), text("last_error")])
        }
        let widths = header.indices.map { i in table.map { $0[i].count }.max() ?? 0 }
        for line in table {
            say(line.enumerated().map { i, cell in cell.padding(toLength: widths[i], withPad: " ", startingAt: 0) }.joined(separator: "  "))
        }
    }
}
