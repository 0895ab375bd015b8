import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Sandbox

@testable import CredGate

/// Builds gateway configurations in code for tests.
enum TestConfig {
    static let apiKey = "test-key-5f0c2d9b7e"

    static func upstream(_ name: String = "assured", url: String, configure: (inout UpstreamConfig) -> Void = { _ in })
        -> UpstreamConfig
    {
        let components = URLComponents(string: url)!
        var upstream = UpstreamConfig(
            name: name,
            url: UpstreamURL(
                scheme: components.scheme == "https" ? .https : .http,
                host: components.host!,
                port: components.port ?? (components.scheme == "https" ? 443 : 80),
                basePath: components.path.hasSuffix("/") ? String(components.path.dropLast()) : components.path))
        configure(&upstream)
        return upstream
    }

    /// The Assured profile's shape: one upstream, the API key, every `/api/` path.
    static func assured(url: String, key: String = apiKey, configure: (inout GatewayConfig) -> Void = { _ in })
        -> GatewayConfig
    {
        var config = GatewayConfig(
            upstreams: ["assured": upstream(url: url)],
            credentials: [
                "assured_key": CredentialConfig(
                    name: "assured_key", kind: .apiKey(header: "x-api-key", value: Secret(key)))
            ],
            routes: [
                RouteConfig(
                    name: "assured-api", methods: nil, path: try! PathPattern("/api/**"), upstream: "assured",
                    credentials: ["assured_key"])
            ]
        )
        config.listen.port = 0
        config.listen.threads = 2
        configure(&config)
        return config
    }
}

/// A gateway and the sandbox it forwards to, both on ephemeral loopback ports.
struct GatewayFixture {
    let gateway: Gateway
    let sandbox: SandboxServer?
    var port: Int { gateway.port }
    var base: String { "http://127.0.0.1:\(gateway.port)" }

    static func withSandbox(
        key: String = TestConfig.apiKey,
        sandboxKey: String? = nil,
        configure: (inout GatewayConfig) -> Void = { _ in },
        _ body: (GatewayFixture) async throws -> Void
    ) async throws {
        let sandbox = try await SandboxServer.start(SandboxOptions(apiKey: sandboxKey ?? key))
        let fixture: GatewayFixture
        do {
            let gateway = try await Gateway.start(
                config: TestConfig.assured(url: sandbox.baseURL, key: key, configure: configure), logger: testLogger)
            fixture = GatewayFixture(gateway: gateway, sandbox: sandbox)
        } catch {
            try? await sandbox.shutdown()
            throw error
        }
        do {
            try await body(fixture)
        } catch {
            try? await fixture.gateway.shutdown()
            try? await sandbox.shutdown()
            throw error
        }
        try await fixture.gateway.shutdown()
        try await sandbox.shutdown()
    }

    static func with(config: GatewayConfig, _ body: (GatewayFixture) async throws -> Void) async throws {
        let gateway = try await Gateway.start(config: config, logger: testLogger)
        let fixture = GatewayFixture(gateway: gateway, sandbox: nil)
        do {
            try await body(fixture)
        } catch {
            try? await gateway.shutdown()
            throw error
        }
        try await gateway.shutdown()
    }
}

let testLogger: Logger = {
    var logger = Logger(label: "credgate-test")
    logger.logLevel = ProcessInfo.processInfo.environment["CREDGATE_TEST_LOG"] == nil ? .error : .info
    return logger
}()

/// One HTTP client for all tests: never follows redirects, like a client of a proxy should see them. Up to 128
/// connections per host (AsyncHTTPClient's default is 8), so "100 concurrent requests" are 100 in flight.
let httpClient: HTTPClient = {
    var configuration = HTTPClient.Configuration()
    configuration.redirectConfiguration = .disallow
    configuration.decompression = .disabled
    configuration.timeout = .init(connect: .seconds(5), read: .seconds(60))
    configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = 128
    return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
}()

struct SimpleResponse {
    var status: HTTPResponseStatus
    var headers: HTTPHeaders
    var body: ByteBuffer
    var text: String { String(buffer: body) }
    func json() throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any] ?? [:]
    }
}

func send(_ method: HTTPMethod = .GET, _ url: String, headers: HTTPHeaders = [:], body: String? = nil) async throws
    -> SimpleResponse
{
    var request = HTTPClientRequest(url: url)
    request.method = method
    request.headers = headers
    if let body { request.body = .bytes(ByteBuffer(string: body)) }
    let response = try await httpClient.execute(request, timeout: .seconds(60))
    let bytes = try await response.body.collect(upTo: 64 * 1024 * 1024)
    return SimpleResponse(status: response.status, headers: response.headers, body: bytes)
}

/// Starts a sandbox and an HTTP client of its own, runs `body`, and always shuts both down.
func withSandboxAndClient(_ options: SandboxOptions, _ body: (SandboxServer, HTTPClient) async throws -> Void)
    async throws
{
    let sandbox = try await SandboxServer.start(options)
    let client = HTTPClient(eventLoopGroupProvider: .singleton)
    do {
        try await body(sandbox, client)
    } catch {
        try? await client.shutdown()
        try? await sandbox.shutdown()
        throw error
    }
    try await client.shutdown()
    try await sandbox.shutdown()
}
