import AsyncHTTPClient
import Foundation
import NIOCore
import Testing

/// `POST /credgate/quitquitquit`: drains and exits 0 when `admin.quit_endpoint: true`, answers as an unknown
/// admin path (and keeps serving) otherwise. Against the real binary, as a Kubernetes Job would use it.
@Suite struct QuitEndpointTests {
    @Test func theQuitEndpointDrainsAndExitsWhenTurnedOn() async throws {
        let gateway = try await SpawnedGateway.start(replacing: [
            "\nupstreams:": "\nadmin: {quit_endpoint: true}\nupstreams:"
        ])
        var request = HTTPClientRequest(url: gateway.base + "/credgate/quitquitquit")
        request.method = .POST
        let response = try await httpClient.execute(request, timeout: .seconds(10))
        #expect(response.status == .ok)
        #expect(String(buffer: try await response.body.collect(upTo: 1024)) == #"{"status":"draining"}"#)
        let exited = try await gateway.eventually(10) { !gateway.process.isRunning }
        #expect(exited, "still running after the quit request: \(gateway.log)")
        if exited { #expect(gateway.process.terminationStatus == 0) }
        #expect(gateway.log.contains("quitquitquit"))
        _ = try? await gateway.stop()
    }

    @Test func theQuitEndpointIsOffByDefault() async throws {
        let gateway = try await SpawnedGateway.start()
        var request = HTTPClientRequest(url: gateway.base + "/credgate/quitquitquit")
        request.method = .POST
        let response = try await httpClient.execute(request, timeout: .seconds(10))
        #expect(response.status == .notFound)
        #expect(response.headers.first(name: "x-credgate-error") == "admin-not-found")
        try await Task.sleep(for: .milliseconds(300))
        #expect(gateway.process.isRunning)
        #expect(try await send(.GET, gateway.base + "/credgate/healthz").status == .ok)
        #expect(try await gateway.stop() == 0)
    }
}
