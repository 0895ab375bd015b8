import ArgumentParser
import AsyncHTTPClient
import CredGate
import Foundation
import NIOCore

/// `credgate status`: asks a running gateway for `/credgate/status` and prints it as tables a person reads at a
/// glance; never shows a secret because the gateway never puts one there.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract:
            "Show a running gateway's readiness, credentials (state, expiry, last refresh and error), presign cache and requests per route."
    )

    @Option(
        help: "The gateway's address (env CREDGATE_URL; default http://127.0.0.1:8080, or CREDGATE_HOST/CREDGATE_PORT)."
    )
    var url: String?

    @Flag(help: "Print the raw JSON.")
    var json = false

    func run() async throws {
        let base = GatewayAddress.resolve(url: url)
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        let body: ByteBuffer
        defer { _ = client.shutdown() }
        do {
            let response = try await client.execute(
                HTTPClientRequest(url: base + "/credgate/status"), timeout: .seconds(5))
            guard response.status == .ok else {
                printError("credgate status: \(base) answered \(response.status.code)")
                throw ExitCode(1)
            }
            body = try await response.body.collect(upTo: 1 << 20)
        } catch let error as ExitCode {
            throw error
        } catch {
            printError("credgate status: no gateway answering at \(base) (\(WaitCommand.describe(error)))")
            throw ExitCode(1)
        }
        guard !json, let object = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any] else {
            say(String(buffer: body))
            return
        }
        say(StatusReport(object, base: base, now: Date()).text)
    }
}

/// The tables `credgate status` prints, from the JSON of `/credgate/status`.
struct StatusReport {
    let object: [String: Any]
    let base: String
    let now: Date

    init(_ object: [String: Any], base: String, now: Date) {
        self.object = object
        self.base = base
        self.now = now
    }

    var text: String {
        var lines: [String] = []
        let uptime = (object["uptime_seconds"] as? Int).map { Self.span(seconds: $0) } ?? "?"
        lines.append("credgate \(object["version"] as? String ?? "?") at \(base), up \(uptime): \(readiness)")
        lines.append("")
        lines += credentials
        if let cache = presignCache {
            lines.append("")
            lines.append(cache)
        }
        lines.append("")
        lines += routes
        return lines.joined(separator: "\n")
    }

    /// `ready`, or `NOT READY` with the gateway's own sentence.
    var readiness: String {
        guard let r = object["readiness"] as? [String: Any], let status = r["status"] as? String else {
            return "readiness unknown"
        }
        if status == "ok" {
            let ignored = (r["not_required"] as? [String]) ?? []
            return ignored.isEmpty
                ? "ready" : "ready (not waiting for \(ignored.joined(separator: ", ")): required_for_ready is false)"
        }
        return "NOT READY: \(r["detail"] as? String ?? status)"
    }

    var credentials: [String] {
        let rows = (object["credentials"] as? [[String: Any]]) ?? []
        var table = [
            [
                "CREDENTIAL", "KIND", "STATE", "EXPIRES IN", "LAST REFRESH", "LOGINS", "REFRESHES", "FAILURES",
                "LAST ERROR",
            ]
        ]
        for row in rows {
            func text(_ key: String) -> String {
                guard let value = row[key], !(value is NSNull) else { return "-" }
                return "\(value)"
            }
            let session = row["kind"] as? String == "jwt_session"
            let failures = (row["login_failures"] as? Int ?? 0) + (row["refresh_failures"] as? Int ?? 0)
            table.append([
                text("name"), text("kind"), text("state"),
                (row["expires_in_seconds"] as? Int).map { Self.span(seconds: $0) } ?? "-",
                (row["last_refresh"] as? String).map(ago) ?? "-",
                session ? text("logins") : "-", session ? text("refreshes") : "-", session ? String(failures) : "-",
                text("last_error"),
            ])
        }
        if rows.isEmpty { return ["no credentials"] }
        return Self.render(table)
    }

    /// One line: the hit rate and what is behind it.
    var presignCache: String? {
        guard let c = object["presign_cache"] as? [String: Any] else { return nil }
        let hits = c["hits"] as? Int ?? 0
        let misses = c["misses"] as? Int ?? 0
        let rate =
            hits + misses == 0
            ? "no lookups yet" : String(format: "hit rate %.0f%%", 100 * Double(hits) / Double(hits + misses))
        return "PRESIGN CACHE  \(rate) (\(hits) hit\(hits == 1 ? "" : "s"), \(misses) miss\(misses == 1 ? "" : "es")), "
            + "\(c["entries"] as? Int ?? 0) of \(c["capacity"] as? Int ?? 0) entries, \(c["evictions"] as? Int ?? 0) evicted, "
            + "\(c["platform_calls"] as? Int ?? 0) platform call(s)"
    }

    /// Requests and errors per route since start; routes with no request are summed up in one line.
    var routes: [String] {
        let rows = (object["routes"] as? [[String: Any]]) ?? []
        var table = [["ROUTE", "REQUESTS", "ERRORS", "4XX", "5XX", "CUT SHORT", "FAST PATH"]]
        var idle = 0
        for row in rows {
            let requests = row["requests"] as? Int ?? 0
            guard requests > 0 else {
                idle += 1
                continue
            }
            table.append([
                row["route"] as? String ?? "?", String(requests), String(row["errors"] as? Int ?? 0),
                String(row["client_errors"] as? Int ?? 0), String(row["server_errors"] as? Int ?? 0),
                String(row["cut_short"] as? Int ?? 0), String(row["fast_path"] as? Int ?? 0),
            ])
        }
        var lines = table.count > 1 ? Self.render(table) : ["no requests since start"]
        if idle > 0, table.count > 1 { lines.append("(\(idle) other route\(idle == 1 ? "" : "s") had no requests)") }
        return lines
    }

    /// `2026-11-22T02:51:02Z` as `3m ago`.
    func ago(_ iso: String) -> String {
        guard let date = ISO8601DateFormatter().date(from: iso) else { return iso }
        return Self.span(seconds: max(0, Int(now.timeIntervalSince(date)))) + " ago"
    }

    /// Seconds for a person: `45s`, `12m 5s`, `2h 48m`, `3d 4h`.
    static func span(seconds s: Int) -> String {
        switch s {
        case ..<60: return "\(s)s"
        case ..<3600: return s % 60 == 0 ? "\(s / 60)m" : "\(s / 60)m \(s % 60)s"
        case ..<86_400: return "\(s / 3600)h \(s % 3600 / 60)m"
        default: return "\(s / 86_400)d \(s % 86_400 / 3600)h"
        }
    }

    static func render(_ table: [[String]]) -> [String] {
        let widths = table[0].indices.map { i in table.map { $0[i].count }.max() ?? 0 }
        return table.map { line in
            line.enumerated().map { i, cell in
                i == line.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }.joined(separator: "  ")
        }
    }
}
