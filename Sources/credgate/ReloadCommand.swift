import ArgumentParser
import AsyncHTTPClient
import CredGate
import Foundation
import NIOCore

/// `credgate reload`: makes a running gateway re-read its configuration, as SIGHUP does.
///
/// Two ways to reach it, as with nginx's `-s reload` and Envoy's admin address:
/// - `--pid-file` (or `CREDGATE_PID_FILE`), when `serve` was started with the same: sends SIGHUP to that process.
///   For the same machine or container; the outcome is in the gateway's log and `/credgate/metrics`.
/// - otherwise `POST /credgate/reload` at the gateway's address (`--url`, `CREDGATE_URL`), which must be turned on
///   with `admin.reload_endpoint: true`. For another container of the pod; the answer says whether it worked and,
///   when not, every problem at its YAML path (exit 1).
struct ReloadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reload",
        abstract:
            "Make a running gateway re-read its configuration without a restart (SIGHUP through its pid file, else POST /credgate/reload)."
    )

    @Option(
        help: ArgumentHelp(
            "The pid file `serve --pid-file` writes (env CREDGATE_PID_FILE): send it SIGHUP.", valueName: "path"))
    var pidFile: String?

    @Option(
        help:
            "The gateway's address, when there is no pid file (env CREDGATE_URL; default http://127.0.0.1:8080, or CREDGATE_HOST/CREDGATE_PORT)."
    )
    var url: String?

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        if let pidFile = pidFile ?? env["CREDGATE_PID_FILE"].flatMap({ $0.isEmpty ? nil : $0 }) {
            try signal(pidFile: pidFile)
        } else {
            try await request(base: GatewayAddress.resolve(url: url))
        }
    }

    private func signal(pidFile: String) throws {
        let pid: Int32
        do {
            pid = try PIDFile.read(pidFile)
        } catch {
            printError("credgate reload: \(error)")
            throw ExitCode(1)
        }
        guard kill(pid, SIGHUP) == 0 else {
            let reason = errno == ESRCH ? "no such process (is the pid file stale?)" : String(cString: strerror(errno))
            printError("credgate reload: cannot signal pid \(pid) from \(pidFile): \(reason)")
            throw ExitCode(1)
        }
        say(
            "credgate reload: sent SIGHUP to pid \(pid); the outcome is in its log and in credgate_config_reloads_total at /credgate/metrics"
        )
    }

    private func request(base: String) async throws {
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        defer { _ = client.shutdown() }
        var request = HTTPClientRequest(url: base + "/credgate/reload")
        request.method = .POST
        let status: UInt
        let body: ByteBuffer
        do {
            let response = try await client.execute(request, timeout: .seconds(30))
            status = response.status.code
            body = try await response.body.collect(upTo: 1 << 20)
        } catch {
            printError("credgate reload: no gateway answering at \(base) (\(WaitCommand.describe(error)))")
            throw ExitCode(1)
        }
        if status == 404 {
            printError(
                "credgate reload: \(base) has no reload endpoint: set admin.reload_endpoint: true in its configuration, or use --pid-file"
            )
            throw ExitCode(1)
        }
        guard let object = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any] else {
            printError("credgate reload: \(base) answered \(status)")
            throw ExitCode(1)
        }
        func problems(_ key: String) -> [String] {
            (object[key] as? [[String: Any]] ?? []).map {
                "\($0["path"] as? String ?? "?"): \($0["message"] as? String ?? "")"
            }
        }
        func names(_ key: String) -> String {
            let list = object[key] as? [String] ?? []
            return list.isEmpty ? "none" : list.joined(separator: ", ")
        }
        switch object["status"] as? String {
        case "reloaded":
            say(
                "credgate at \(base) reloaded its configuration (sessions kept: \(names("sessions_kept")); logging in again: \(names("sessions_new")))"
            )
            for line in problems("needs_restart") { say("  not applied until a restart: \(line)") }
        case "failed":
            let listed = problems("problems")
            printError(
                "credgate reload: \(base) refused the new configuration and keeps serving the old one; \(listed.count) problem(s):"
            )
            for line in listed { printError("  \(line)") }
            throw ExitCode(1)
        case "draining":
            printError("credgate reload: \(base) is draining (shutting down): nothing reloaded")
            throw ExitCode(1)
        default:
            printError("credgate reload: \(base) answered \(status)")
            throw ExitCode(1)
        }
    }
}

/// The pid file of `serve --pid-file`: the process id and a newline, written when the gateway listens and removed
/// when it stops.
enum PIDFile {
    struct Problem: Error, CustomStringConvertible {
        let description: String
    }

    static func write(_ path: String) throws {
        try Data("\(getpid())\n".utf8).write(to: URL(fileURLWithPath: path), options: .atomic)
    }

    /// Removes the file if it still names this process (a newer gateway may have taken the path over).
    static func remove(_ path: String) {
        guard (try? read(path)) == getpid() else { return }
        try? FileManager.default.removeItem(atPath: path)
    }

    static func read(_ path: String) throws -> Int32 {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw Problem(description: "cannot read the pid file '\(path)' (is credgate serving with --pid-file?)")
        }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let pid = Int32(text), pid > 1 else {
            throw Problem(description: "the pid file '\(path)' does not hold a process id")
        }
        return pid
    }
}
