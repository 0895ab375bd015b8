import ArgumentParser
import AsyncHTTPClient
import CredGate
import Foundation
import NIOCore

/// `credgate wait`: for an application container that must start after credgate (cloud-sql-proxy's `wait`).
/// Polls `GET /credgate/readiness` until it answers 200 (exit 0) or the timeout passes (exit 1, with a sentence
/// saying what was not ready). A gateway that is not there yet is waited for too: it may still be starting.
struct WaitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wait",
        abstract: "Wait until a running gateway is ready; exits 0 as soon as it is, 1 on timeout.")

    @Option(
        help: "The gateway's address (env CREDGATE_URL; default http://127.0.0.1:8080, or CREDGATE_HOST/CREDGATE_PORT)."
    )
    var url: String?

    @Option(help: ArgumentHelp("How long to wait, written as in the config: 500ms, 30s, 1m.", valueName: "duration"))
    var timeout: String = "30s"

    /// Time between two polls.
    static let interval: Duration = .milliseconds(250)

    func validate() throws {
        guard DurationText.parse(timeout) != nil else {
            throw ValidationError("--timeout: expected a duration (\(DurationText.hint)), got '\(timeout)'")
        }
    }

    func run() async throws {
        let base = GatewayAddress.resolve(url: url)
        let limit = Duration.nanoseconds(DurationText.parse(timeout)!.nanoseconds)
        let deadline = ContinuousClock.now + limit
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        var notReady = "no answer yet"
        while true {
            let remaining = deadline - ContinuousClock.now
            // Each poll gets at most 2 s, and never outlives the deadline by much.
            let pollTimeout = min(max(remaining, .milliseconds(100)), .seconds(2))
            switch await Self.poll(client, base: base, timeout: pollTimeout) {
            case .ready:
                try? await client.shutdown()
                say("credgate at \(base) is ready")
                return
            case .notReady(let why):
                notReady = why
            }
            let left = deadline - ContinuousClock.now
            guard left > .zero else { break }
            try? await Task.sleep(for: min(Self.interval, left))
        }
        try? await client.shutdown()
        printError("credgate wait: \(base) was not ready after \(timeout): \(notReady)")
        throw ExitCode(1)
    }

    enum Poll {
        case ready
        case notReady(String)
    }

    /// One look at `/credgate/readiness`.
    static func poll(_ client: HTTPClient, base: String, timeout: Duration) async -> Poll {
        do {
            let response = try await client.execute(
                HTTPClientRequest(url: base + "/credgate/readiness"),
                timeout: .milliseconds(Int64(timeout / .milliseconds(1))))
            let body = try await response.body.collect(upTo: 1 << 20)
            if response.status == .ok { return .ready }
            // The gateway says why in `detail` (names and states, never a secret).
            if let object = try? JSONSerialization.jsonObject(with: Data(buffer: body)) as? [String: Any],
                let detail = object["detail"] as? String
            {
                return .notReady("\(detail) (readiness answered \(response.status.code))")
            }
            return .notReady("readiness answered \(response.status.code)")
        } catch {
            return .notReady("no gateway answering (\(describe(error)))")
        }
    }

    /// A short reason for a failed poll: connection refused, a timeout, or the error's type.
    static func describe(_ error: any Error) -> String {
        let text = "\(error)"
        if text.localizedCaseInsensitiveContains("connection refused") { return "connection refused" }
        if let client = error as? HTTPClientError {
            switch client {
            case .deadlineExceeded, .readTimeout, .connectTimeout: return "timed out"
            default: return "\(client)"
            }
        }
        return text
    }
}
