import Foundation
import Testing

@testable import CredGate

/// `credgate wait` (the executable) against a gateway in this process: exit 0 as soon as readiness is 200, 1
/// after the timeout with a sentence saying what was not ready.
@Suite struct WaitCommandTests {
    @Test func exitsAtOnceWhenTheGatewayIsReady() async throws {
        try await ReadinessProbeTests.withGateway { f in
            _ = try await ReadinessProbeTests.poll(f.base + "/credgate/readiness") { $0.status == .ok }
            let run = try await CommandRunner.run(["wait", "--url", f.base, "--timeout", "30s"])
            #expect(run.code == 0, "\(run.output)")
            #expect(run.output.contains("is ready"))
            // Well under the 30 s timeout, with room for starting a process on a loaded 2-core machine.
            #expect(run.elapsed < .seconds(20), "exits as soon as it is ready, not after its timeout: \(run.elapsed)")

            // The address from CREDGATE_URL, as `credgate status` reads it.
            let fromEnvironment = try await CommandRunner.run(
                ["wait", "--timeout", "5s"], environment: ["CREDGATE_URL": f.base])
            #expect(fromEnvironment.code == 0, "\(fromEnvironment.output)")
        }
    }

    @Test func waitsForTheSessionToLogIn() async throws {
        try await ReadinessProbeTests.withGateway(
            failLogins: 3,
            session: { s in
                s.backoffInitial = .milliseconds(200)
                s.backoffMax = .milliseconds(400)
            }
        ) { f in
            let run = try await CommandRunner.run(["wait", "--url", f.base, "--timeout", "25s"])
            #expect(run.code == 0, "ready before its timeout: \(run.output)")
            #expect(await f.sandbox.counters().logins >= 1)
        }
    }

    @Test func exits1AfterItsTimeoutWhenNeverReady() async throws {
        try await ReadinessProbeTests.withGateway(password: "pw-WRONG-wait-0c3e") { f in
            let run = try await CommandRunner.run(["wait", "--url", f.base, "--timeout", "1500ms"])
            #expect(run.code == 1, "\(run.output)")
            #expect(run.elapsed >= .milliseconds(1500), "it waited its whole timeout: \(run.elapsed)")
            #expect(run.elapsed < .seconds(15), "\(run.elapsed)")
            #expect(run.output.contains("was not ready after 1500ms"), "\(run.output)")
            #expect(run.output.contains("assured_session"), "says which credential: \(run.output)")
            for secret in await f.secrets() + ["pw-WRONG-wait-0c3e"] {
                #expect(!run.output.contains(secret))
            }
        }
    }

    @Test func exits1WhenNoGatewayAnswers() async throws {
        let refusing = try RefusingPort()
        defer { refusing.close() }
        let run = try await CommandRunner.run(["wait", "--url", "http://127.0.0.1:\(refusing.port)", "--timeout", "1s"])
        #expect(run.code == 1, "\(run.output)")
        #expect(run.elapsed >= .seconds(1) && run.elapsed < .seconds(15), "\(run.elapsed)")
        #expect(run.output.contains("no gateway answering"), "\(run.output)")
    }

    @Test func refusesATimeoutThatIsNotADuration() async throws {
        let run = try await CommandRunner.run(["wait", "--url", "http://127.0.0.1:1", "--timeout", "soon"])
        #expect(run.code != 0 && run.code != 1, "a usage error, not a timeout: \(run.code) \(run.output)")
        #expect(run.output.contains("--timeout"), "\(run.output)")
    }
}
