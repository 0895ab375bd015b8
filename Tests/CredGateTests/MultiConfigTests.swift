import Foundation
import NIOCore
import NIOHTTP1
import Testing

@testable import CredGate

/// Several platforms in one process: several `--config` files, or `include:`, each file with routes one listener.
@Suite struct MultiConfigTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let environment = [
        "ASSURED_API_KEY": "k", "ASSURED_USER": "user@example.com", "ASSURED_PASS": "pw",
        "WRIFTAI_ACCESS_TOKEN": "tok-1",
    ]

    /// Writes `files` (name → YAML) into a new directory and returns its path.
    static func directory(_ files: [String: String]) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("credgate-multi-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for (name, text) in files {
            let url = dir.appendingPathComponent(name)
            try FileManager.default.createDirectory(
                at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try text.write(to: url, atomically: true, encoding: .utf8)
        }
        return dir
    }

    static func profile(port: Int, upstream: String, route: String, path: String = "/a/**", extra: String = "")
        -> String
    {
        """
        listen: {port: \(port)}
        upstreams:
          \(upstream): {url: "http://127.0.0.1:9"}
        credentials:
          \(upstream)_key: {kind: api_key, header: x-key, value: secret}
        routes:
          - {name: \(route), path: \(path), upstream: \(upstream), credentials: [\(upstream)_key]}
        \(extra)
        """
    }

    static func issues(_ body: () throws(ConfigError) -> GatewayConfig) -> [ConfigIssue] {
        do {
            _ = try body()
            return []
        } catch {
            return error.issues
        }
    }

    @Test func theWriftAIProfileAloneServesV1PathsWithTheBearerToken() throws {
        let config = try ConfigLoader.load(
            paths: [Self.root.appendingPathComponent("Config/wriftai.yaml").path], environment: Self.environment)
        #expect(config.listeners.count == 1)
        #expect(config.listen.port == 8081)
        let upstream = try #require(config.upstreams["wriftai"])
        #expect(upstream.url.description == "https://api.wrift.ai/v1")
        #expect(upstream.mount == "/v1")
        guard case .apiKey(let header, let value) = config.credentials["wriftai_token"]?.kind else {
            Issue.record("the token is not a header credential")
            return
        }
        #expect(header == "Authorization")
        #expect(value.reveal() == "Bearer tok-1")
        #expect(config.routes.map(\.name) == ["wriftai-prediction-stream", "wriftai-api"])
        #expect(config.routes[0].idleTimeout == .off)
        #expect(config.routes[1].idleTimeout == .upstream)
    }

    @Test func theWriftAIProfileNeedsOnlyItsOwnVariables() {
        let found = Self.issues { () throws(ConfigError) in
            try ConfigLoader.load(
                paths: [Self.root.appendingPathComponent("Config/wriftai.yaml").path], environment: [:])
        }
        #expect(found.map(\.path) == ["credentials.wriftai_token.value"])
        #expect(found.first?.message.contains("WRIFTAI_ACCESS_TOKEN") == true)
        #expect(found.first?.message.contains("ASSURED") == false)
    }

    @Test func theCombinedExampleIsBothProfilesOnTheirOwnPorts() throws {
        let config = try ConfigLoader.load(
            paths: [Self.root.appendingPathComponent("Config/examples/combined.yaml").path],
            environment: Self.environment)
        #expect(config.listeners.map(\.name) == ["credgate", "wriftai"])
        #expect(config.listeners.map(\.listen.port) == [8080, 8081])
        #expect(config.listeners[0].routes.allSatisfy { $0.upstream == "assured" })
        #expect(config.listeners[1].routes.allSatisfy { $0.upstream == "wriftai" })
        #expect(config.log.format == .json)
        #expect(config.spool.memoryLimit == 64 * 1024) // from the Assured profile
        // The same as naming both files.
        let both = try ConfigLoader.load(
            paths: [
                Self.root.appendingPathComponent("Config/credgate.yaml").path,
                Self.root.appendingPathComponent("Config/wriftai.yaml").path,
            ],
            environment: Self.environment)
        #expect(both.listeners.map(\.name) == config.listeners.map(\.name))
        #expect(both.allRoutes.map(\.name) == config.allRoutes.map(\.name))
    }

    @Test func clashingNamesAndPortsAreReportedWithBothFiles() throws {
        let dir = try Self.directory([
            "one.yaml": Self.profile(port: 9001, upstream: "shared", route: "r"),
            "two.yaml": Self.profile(port: 9001, upstream: "shared", route: "r"),
        ])
        let one = dir.appendingPathComponent("one.yaml").path
        let two = dir.appendingPathComponent("two.yaml").path
        let found = Self.issues { () throws(ConfigError) in try ConfigLoader.load(paths: [one, two], environment: [:]) }
        #expect(
            found.contains(
                ConfigIssue(
                    path: "\(two) upstreams.shared",
                    message: "upstream 'shared' is also defined in \(one): names must be unique across files")))
        #expect(
            found.contains(
                ConfigIssue(
                    path: "\(two) credentials.shared_key",
                    message: "credential 'shared_key' is also defined in \(one): names must be unique across files")))
        #expect(
            found.contains(
                ConfigIssue(
                    path: "\(two) routes[0].name",
                    message: "route 'r' is also defined in \(one): names must be unique across files")))
        #expect(
            found.contains { $0.path == "\(two) listen.port" && $0.message.contains("also the listener of \(one)") })
    }

    @Test func issuesInsideAFileNameTheFileWhenThereAreSeveral() throws {
        let dir = try Self.directory([
            "one.yaml": Self.profile(port: 9001, upstream: "a", route: "ra"),
            "two.yaml": Self.profile(port: 9002, upstream: "b", route: "rb", extra: "bogus: 1"),
        ])
        let two = dir.appendingPathComponent("two.yaml").path
        let found = Self.issues { () throws(ConfigError) in
            try ConfigLoader.load(paths: [dir.appendingPathComponent("one.yaml").path, two], environment: [:])
        }
        #expect(found.count == 1)
        #expect(found.first?.path == "\(two) bogus")
    }

    @Test func processWideSectionsMayBeSetInOneFileOnly() throws {
        let dir = try Self.directory([
            "one.yaml": Self.profile(port: 9001, upstream: "a", route: "ra", extra: "log: {format: json}"),
            "two.yaml": Self.profile(port: 9002, upstream: "b", route: "rb", extra: "log: {format: text}"),
        ])
        let one = dir.appendingPathComponent("one.yaml").path
        let two = dir.appendingPathComponent("two.yaml").path
        let found = Self.issues { () throws(ConfigError) in try ConfigLoader.load(paths: [one, two], environment: [:]) }
        #expect(
            found == [
                ConfigIssue(
                    path: "\(two) log",
                    message: "already set in \(one): 'log' applies to the whole process, so only one file may set it")
            ])
    }

    @Test func includesAreRelativeToTheIncludingFileAndComeFirst() throws {
        let dir = try Self.directory([
            "profiles/a.yaml": Self.profile(port: 9001, upstream: "a", route: "ra"),
            "profiles/b.yaml": Self.profile(port: 9002, upstream: "b", route: "rb"),
            "main.yaml": "include: [profiles/a.yaml, profiles/b.yaml]\nshutdown: {grace: 3s}\n",
        ])
        let config = try ConfigLoader.load(paths: [dir.appendingPathComponent("main.yaml").path], environment: [:])
        #expect(config.listeners.map(\.name) == ["a", "b"])
        #expect(config.listeners.map(\.listen.port) == [9001, 9002])
        #expect(config.shutdown.grace == .seconds(3))
    }

    @Test func includeCyclesAndMissingFilesAreReported() throws {
        let dir = try Self.directory([
            "a.yaml": "include: [b.yaml]\n" + Self.profile(port: 9001, upstream: "a", route: "ra"),
            "b.yaml": "include: [a.yaml]\n",
            "c.yaml": "include: [nowhere.yaml]\n",
        ])
        let a = dir.appendingPathComponent("a.yaml").path
        let b = dir.appendingPathComponent("b.yaml").path
        let cycle = Self.issues { () throws(ConfigError) in try ConfigLoader.load(paths: [a], environment: [:]) }
        #expect(cycle.contains { $0.path == b && $0.message.contains("include cycle") })
        let missing = Self.issues { () throws(ConfigError) in
            try ConfigLoader.load(paths: [dir.appendingPathComponent("c.yaml").path], environment: [:])
        }
        #expect(
            missing.contains {
                $0.message.contains("cannot read") && $0.message.contains("nowhere.yaml")
                    && $0.message.contains("no such file")
            })
    }

    @Test func aFileWithoutRoutesMayNotListen() throws {
        let dir = try Self.directory([
            "a.yaml": Self.profile(port: 9001, upstream: "a", route: "ra"),
            "main.yaml": "include: [a.yaml]\nlisten: {port: 9005}\n",
        ])
        let main = dir.appendingPathComponent("main.yaml").path
        let found = Self.issues { () throws(ConfigError) in try ConfigLoader.load(paths: [main], environment: [:]) }
        #expect(found.map(\.path) == ["\(main) listen"])
    }

    @Test func routesOfOneListenerAreNotInTheOther() throws {
        let dir = try Self.directory([
            "a.yaml": Self.profile(port: 0, upstream: "a", route: "ra", path: "/a/**"),
            "b.yaml": Self.profile(port: 0, upstream: "b", route: "rb", path: "/b/**"),
        ])
        let config = try ConfigLoader.load(
            paths: [dir.appendingPathComponent("a.yaml").path, dir.appendingPathComponent("b.yaml").path],
            environment: [:])
        let runtime = try GatewayRuntime(config: config, logger: .init(label: "test"))
        #expect(runtime.listeners.count == 2)
        func routeName(_ listener: Int, _ path: String) -> String? {
            if case .matched(let r) = runtime.listeners[listener].routes.lookup(method: "GET", path: path[...]) {
                return r.name
            }
            return nil
        }
        #expect(routeName(0, "/a/x") == "ra")
        #expect(routeName(0, "/b/x") == nil)
        #expect(routeName(1, "/b/x") == "rb")
        #expect(routeName(1, "/a/x") == nil)
        // credgate's own space is on every listener.
        #expect(routeName(0, "/credgate/healthz") == "credgate-admin")
        #expect(routeName(1, "/credgate/healthz") == "credgate-admin")
    }

    /// The files of the Kubernetes example's ConfigMap (`  name: |` blocks), as the pod mounts them.
    static func configMapFiles(_ manifest: String) -> [String: String] {
        var files: [String: String] = [:]
        var current: String?
        var lines: [String] = []
        func finish() {
            if let current { files[current] = lines.joined(separator: "\n") + "\n" }
            current = nil
            lines = []
        }
        for line in manifest.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            if line.hasPrefix("  "), !line.hasPrefix("   "), line.hasSuffix(": |") {
                finish()
                current = String(line.dropFirst(2).dropLast(3))
            } else if current != nil {
                if line.hasPrefix("    ") {
                    lines.append(String(line.dropFirst(4)))
                } else if line.trimmingCharacters(in: .whitespaces).isEmpty {
                    lines.append("")
                } else {
                    finish()
                }
            }
        }
        finish()
        return files
    }

    @Test func theKubernetesExampleServesBothPlatforms() throws {
        let manifest = try String(
            contentsOf: Self.root.appendingPathComponent("deploy/kubernetes/sidecar.yaml"), encoding: .utf8)
        let files = Self.configMapFiles(manifest)
        #expect(files.keys.sorted() == ["admin.yaml", "credgate.yaml", "wriftai.yaml"])
        let dir = try Self.directory(files)
        // As CREDGATE_CONFIG names them in the pod: the two platforms, and the listener Prometheus and the probes reach.
        #expect(
            manifest.contains("value: /etc/credgate/credgate.yaml,/etc/credgate/wriftai.yaml,/etc/credgate/admin.yaml"))
        let config = try ConfigLoader.load(
            paths: ["credgate.yaml", "wriftai.yaml", "admin.yaml"].map { dir.appendingPathComponent($0).path },
            environment: Self.environment)
        #expect(config.listeners.map(\.listen.port) == [8080, 8081, 9090])
        #expect(config.upstreams["wriftai"]?.mount == "/v1")
    }

    @Test func threeProfilesTogetherAndEachCredentialsKindInStatus() throws {
        let env = Self.environment.merging([
            "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "secret", "AWS_REGION": "eu-west-1",
            "S3_BUCKET": "bucket-1",
        ]) { $1 }
        let config = try ConfigLoader.load(
            paths: ["Config/credgate.yaml", "Config/wriftai.yaml", "Config/s3.yaml"].map {
                Self.root.appendingPathComponent($0).path
            }, environment: env)
        #expect(config.listeners.map(\.listen.port) == [8080, 8081, 8082])
        let runtime = try GatewayRuntime(
            config: config, logger: .init(label: "test"), sessionTransport: { _ in NeverTransport() })
        let kinds = Dictionary(uniqueKeysWithValues: runtime.admin.credentialStatus().map { ($0.name, $0.kind) })
        #expect(kinds["assured_key"] == "api_key")
        #expect(kinds["assured_session"] == "jwt_session")
        #expect(kinds["wriftai_token"] == "api_key")
        #expect(kinds.values.contains("aws_sigv4"))
    }

    /// A session transport that never answers (the sessions above are never started).
    struct NeverTransport: SessionTransport {
        func send(method: String, path: String, headers: [(String, String)], body: String) async throws
            -> (status: Int, headers: [(String, String)], body: [UInt8])
        {
            throw SessionTransportError("not used")
        }
    }

    // MARK: - mount

    @Test func aMountIsTakenOffBeforeTheBasePath() throws {
        var upstream = UpstreamConfig(
            name: "w", url: UpstreamURL(scheme: .https, host: "api.wrift.ai", port: 443, basePath: "/v1"))
        upstream.mount = "/v1"
        let target = try UpstreamTarget(key: 0, config: upstream)
        #expect(target.upstreamURI("/v1/models") == "/v1/models")
        #expect(target.upstreamURI("/v1/models?cursor=x") == "/v1/models?cursor=x")
        #expect(target.upstreamURI("/v1") == "/v1/")
        #expect(target.upstreamURI("/v1?x=1") == "/v1/?x=1")
        #expect(target.upstreamURI("/v10/models") == "/v1/v10/models") // not under the mount: as sent, after the base
        upstream.url.basePath = "/api/v2"
        let other = try UpstreamTarget(key: 0, config: upstream)
        #expect(other.upstreamURI("/v1/models") == "/api/v2/models")
    }

    @Test func linksComeBackUnderTheMount() {
        let rewriter = LinkRewriter(
            upstream: UpstreamURL(scheme: .https, host: "api.wrift.ai", port: 443, basePath: "/v1"), mount: "/v1")
        #expect(
            rewriter.rewriteHeader("https://api.wrift.ai/v1/uploads/7", to: "http://127.0.0.1:8081")
                == "http://127.0.0.1:8081/v1/uploads/7")
        #expect(rewriter.rewriteHeader("https://storage.example/v1/x", to: "http://127.0.0.1:8081") == nil)
        let body = rewriter.rewriteBody(
            ByteBuffer(string: #"{"next": "https://api.wrift.ai/v1/models?cursor=2"}"#), to: "http://127.0.0.1:8081")
        #expect(body.map { String(buffer: $0) } == #"{"next": "http://127.0.0.1:8081/v1/models?cursor=2"}"#)
    }

    /// The in-place checks give what lowercasing and searching strings gave: which answers are JSON, which bodies
    /// mention the upstream (escaped slashes too, any position), and nothing for a body without a link.
    @Test func jsonAnswersAndLinksAreRecognisedInPlace() {
        for type in [
            "application/json", "Application/JSON; charset=utf-8", "application/problem+json", "APPLICATION/VND.A+JSON",
            "text/plain", "application/jso", "", "+json", "application/x-json", "text/html; a=+JSON",
        ] {
            let lowered = type.lowercased()
            #expect(
                LinkRewriteFilter.isJSON(type) == (lowered.hasPrefix("application/json") || lowered.contains("+json")),
                "\(type)")
        }
        let rewriter = LinkRewriter(
            upstream: UpstreamURL(scheme: .https, host: "api.wrift.ai", port: 443, basePath: "/v1"), mount: "/v1")
        #expect(!rewriter.mentionsUpstream(ByteBuffer(string: #"{"ok":true,"items":[1,2,3]}"#)))
        #expect(!rewriter.mentionsUpstream(ByteBuffer(string: "")))
        #expect(rewriter.mentionsUpstream(ByteBuffer(string: "https://api.wrift.ai/v1")))
        #expect(rewriter.mentionsUpstream(ByteBuffer(string: #"{"u":"https:\/\/api.wrift.ai\/v1\/x"}"#)))
        #expect(rewriter.mentionsUpstream(ByteBuffer(string: #"{"u":"https://api.wrift.ai:443/v1"}"#)))
        #expect(rewriter.rewriteBody(ByteBuffer(string: #"{"ok":true}"#), to: "http://gw") == nil)
    }

    @Test func aMountMustBeALiteralPath() {
        let yaml = """
            upstreams:
              w: {url: "http://127.0.0.1:9/v1", mount: "v1"}
            routes:
              - {name: r, path: /v1/**, upstream: w}
            """
        let found = Self.issues { () throws(ConfigError) in try ConfigLoader.parse(yaml: yaml, environment: [:]) }
        #expect(found.map(\.path) == ["upstreams.w.mount"])
    }

    // MARK: - Rate limits

    @Test func retryAfterComesFromTheResetTime() {
        #expect(RateLimitHeaders.retryAfterSeconds(reset: "1800000030", now: 1_800_000_000) == 30)
        #expect(RateLimitHeaders.retryAfterSeconds(reset: "1800000000.2", now: 1_800_000_000) == 1)
        #expect(RateLimitHeaders.retryAfterSeconds(reset: "1799999990", now: 1_800_000_000) == 0)
        #expect(RateLimitHeaders.retryAfterSeconds(reset: "12", now: 1_800_000_000) == 12) // seconds from now
        #expect(RateLimitHeaders.retryAfterSeconds(reset: "soon", now: 1_800_000_000) == nil)
        #expect(RateLimitHeaders.retryAfterSeconds(reset: "-5", now: 1_800_000_000) == nil)

        var headers = HTTPHeaders([("x-ratelimit-reset", "1800000030")])
        RateLimitHeaders.addRetryAfter(status: .tooManyRequests, headers: &headers, now: { 1_800_000_000 })
        #expect(headers["retry-after"] == ["30"])
        #expect(headers["x-ratelimit-reset"] == ["1800000030"])
        // The platform's own Retry-After wins; other statuses are left alone.
        var own = HTTPHeaders([("x-ratelimit-reset", "1800000030"), ("retry-after", "5")])
        RateLimitHeaders.addRetryAfter(status: .tooManyRequests, headers: &own, now: { 1_800_000_000 })
        #expect(own["retry-after"] == ["5"])
        var ok = HTTPHeaders([("x-ratelimit-reset", "1800000030")])
        RateLimitHeaders.addRetryAfter(status: .ok, headers: &ok, now: { 1_800_000_000 })
        #expect(ok["retry-after"].isEmpty)
    }

    @Test func idleTimeoutOffIsReadPerRoute() throws {
        let yaml = """
            upstreams:
              w: {url: "http://127.0.0.1:9", idle_timeout: 30s}
            routes:
              - {name: s, path: /s/**, upstream: w, idle_timeout: off}
              - {name: t, path: /t/**, upstream: w, idle_timeout: 5m}
              - {name: u, path: /u/**, upstream: w}
            """
        let config = try ConfigLoader.parse(yaml: yaml, environment: [:])
        #expect(config.routes.map(\.idleTimeout) == [.off, .after(.minutes(5)), .upstream])
        let runtime = try GatewayRuntime(config: config, logger: .init(label: "test"))
        func idle(_ path: String) -> TimeAmount?? {
            if case .matched(let r) = runtime.listeners[0].routes.lookup(method: "GET", path: path[...]) {
                return .some(r.idleTimeout)
            }
            return .none
        }
        #expect(idle("/s/x") == .some(nil))
        #expect(idle("/t/x") == .some(.minutes(5)))
        #expect(idle("/u/x") == .some(.seconds(30)))
    }
}

/// The exchange timer's deadline: the head's while it is awaited, then the route's idle timeout, none when off.
@Suite struct ExchangeDeadlineTests {
    @Test func theIdleDeadlineIsTheRoutesAndNoneWhenOff() {
        let sent = NIODeadline.uptimeNanoseconds(1_000_000_000)
        let active = NIODeadline.uptimeNanoseconds(5_000_000_000)
        #expect(
            ProxyHandler.deadline(
                awaitingHead: true, sentAt: sent, lastActivity: active, responseTimeout: .seconds(60),
                idleTimeout: nil) == sent + .seconds(60))
        #expect(
            ProxyHandler.deadline(
                awaitingHead: false, sentAt: sent, lastActivity: active, responseTimeout: .seconds(60),
                idleTimeout: .seconds(2)) == active + .seconds(2))
        #expect(
            ProxyHandler.deadline(
                awaitingHead: false, sentAt: sent, lastActivity: active, responseTimeout: .seconds(60),
                idleTimeout: nil) == .distantFuture)
    }

    @Test func retriesWaitAsAskedAndOnlyForIdempotentMethods() {
        var policy = RetryPolicy()
        policy.attempts = 2
        policy.initialBackoff = .milliseconds(100)
        policy.maxWait = .seconds(5)
        let busy = HTTPResponseHead(version: .http1_1, status: .serviceUnavailable)
        #expect(policy.wait(after: busy, method: .GET, attempt: 0, now: 0) == .milliseconds(100))
        #expect(policy.wait(after: busy, method: .GET, attempt: 1, now: 0) == .milliseconds(200))
        #expect(policy.wait(after: busy, method: .GET, attempt: 2, now: 0) == nil) // attempts used up
        #expect(policy.wait(after: busy, method: .POST, attempt: 0, now: 0) == nil)
        #expect(policy.wait(after: busy, method: .PATCH, attempt: 0, now: 0) == nil)
        #expect(
            policy.wait(
                after: HTTPResponseHead(version: .http1_1, status: .internalServerError), method: .GET, attempt: 0,
                now: 0) == nil)
        var limited = HTTPResponseHead(version: .http1_1, status: .tooManyRequests)
        limited.headers.add(name: "x-ratelimit-reset", value: "1800000003")
        #expect(policy.wait(after: limited, method: .PUT, attempt: 0, now: 1_800_000_000) == .seconds(3))
        limited.headers.replaceOrAdd(name: "x-ratelimit-reset", value: "1800000060")
        // longer than max_wait
        #expect(policy.wait(after: limited, method: .PUT, attempt: 0, now: 1_800_000_000) == nil)
        limited.headers.add(name: "retry-after", value: "1")
        #expect(policy.wait(after: limited, method: .DELETE, attempt: 0, now: 1_800_000_000) == .seconds(1))
    }
}
