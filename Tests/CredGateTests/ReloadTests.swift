import Foundation
import Logging
import NIOCore
import Testing

@testable import CredGate

/// Reload without a restart, without a socket: what a reload may change (``ReloadCheck``), what a new runtime
/// carries over from the old one, the `reload:` and `admin.reload_endpoint` keys, and the secret files a load
/// reports. The same through real sockets and signals: `Tests/IntegrationTests/ConfigReloadTests.swift`.
@Suite struct ReloadUnitTests {
    static let yaml = """
        listen: {port: 0}
        upstreams:
          platform: {url: "http://127.0.0.1:9"}
        credentials:
          key: {kind: api_key, header: x-api-key, value: "${KEY}"}
          session:
            kind: jwt_session
            upstream: platform
            login: {path: /login, body: '{"password": "${PASSWORD}"}', access_token: access}
        routes:
          - {name: api, path: /api/**, upstream: platform, credentials: [key, session], transforms: [presign_cache]}
        """

    static func config(_ yaml: String = yaml, key: String = "key-1", password: String = "pw-1") throws -> GatewayConfig
    {
        try ConfigLoader.parse(yaml: yaml, environment: ["KEY": key, "PASSWORD": password])
    }

    static func runtime(_ config: GatewayConfig, previous: GatewayRuntime? = nil, keys: UpstreamKeys) throws
        -> GatewayRuntime
    {
        try GatewayRuntime(
            config: config, logger: Logger(label: "test"), sessionTransport: { _ in MultiConfigTests.NeverTransport() },
            extraFilters: nil, metrics: nil, previous: previous, keys: keys)
    }

    // MARK: - What a reload may change

    @Test func aListenerThatMovesIsRefusedAtItsYAMLPath() throws {
        let old = try Self.config()
        var new = old
        new.listeners[0].listen.port = 8181
        new.listeners[0].listen.host = "0.0.0.0"
        let (refused, restart) = ReloadCheck.compare(old, new)
        #expect(refused.map(\.path) == ["listen.host", "listen.port"])
        #expect(refused[1].message.contains("from 0 to 8181"))
        #expect(restart.isEmpty)
    }

    @Test func settingsFixedAtStartAreReportedAsNeedingARestart() throws {
        let old = try Self.config()
        var new = old
        new.listeners[0].listen.idleTimeout = .seconds(5)
        new.listeners[0].listen.maxConnections = 10
        new.log.format = .json
        // Applied at once: read for each request.
        new.listeners[0].listen.maxHeaderBytes = 1024
        let (refused, restart) = ReloadCheck.compare(old, new)
        #expect(refused.isEmpty)
        #expect(restart.map(\.path) == ["listen.max_connections", "listen.idle_timeout", "log"])
    }

    @Test func addingOrRemovingAListenerIsRefused() throws {
        let old = try Self.config()
        var new = old
        new.listeners.append(ListenerConfig(name: "other", listen: ListenConfig(), routes: []))
        let (refused, _) = ReloadCheck.compare(old, new)
        #expect(refused.count == 1 && refused[0].message.contains("needs a restart"))
    }

    // MARK: - What a new runtime carries over

    @Test func anUnchangedSessionIsCarriedOverAndAChangedPasswordMakesANewOne() throws {
        let keys = UpstreamKeys(upstreams: 1)
        let first = try Self.runtime(try Self.config(), keys: keys)
        // A new route, same credentials: the same session (its token), target, cache and placeholders.
        let withRoute = try Self.config(
            Self.yaml + "\n  - {name: more, path: /more/**, upstream: platform, credentials: [key]}")
        let second = try Self.runtime(withRoute, previous: first, keys: keys)
        #expect(second.sessions["session"] === first.sessions["session"])
        #expect(second.targets[0] === first.targets[0])
        #expect(second.presignCache === first.presignCache)
        #expect(second.placeholders === first.placeholders)
        #expect(second.metrics === first.metrics)
        #expect(second.admin.drain === first.admin.drain)
        #expect(second.listeners[0].routes.entries.contains { $0.payload.name == "more" })
        // A rotated API key leaves the session alone; a rotated password replaces it.
        let rotatedKey = try Self.runtime(try Self.config(key: "key-2"), previous: second, keys: keys)
        #expect(rotatedKey.sessions["session"] === first.sessions["session"])
        let rotatedPassword = try Self.runtime(
            try Self.config(key: "key-2", password: "pw-2"), previous: rotatedKey, keys: keys)
        #expect(rotatedPassword.sessions["session"] !== first.sessions["session"])
        #expect(rotatedPassword.targets[0] === first.targets[0])
    }

    @Test func aChangedUpstreamGetsAFreshPoolKeyAndItsSessionLogsInAgain() throws {
        let keys = UpstreamKeys(upstreams: 1)
        let first = try Self.runtime(try Self.config(), keys: keys)
        let moved = try Self.config(Self.yaml.replacingOccurrences(of: "127.0.0.1:9", with: "127.0.0.1:10"))
        let second = try Self.runtime(moved, previous: first, keys: keys)
        #expect(second.targets[0] !== first.targets[0])
        // The old target still exists (the first runtime holds it), so its key is not handed out again.
        #expect(second.targets[0].key != first.targets[0].key)
        #expect(second.sessions["session"] !== first.sessions["session"])
    }

    @Test func aConnectionSeesANewRuntimeOnlyAfterASwap() throws {
        let keys = UpstreamKeys(upstreams: 1)
        let first = try Self.runtime(try Self.config(), keys: keys)
        let holder = RuntimeHolder(first)
        let (runtime, generation) = holder.snapshot()
        #expect(runtime === first)
        #expect(holder.newer(than: generation) == nil)
        let second = try Self.runtime(try Self.config(key: "key-2"), previous: first, keys: keys)
        #expect(holder.swap(to: second) === first)
        let seen = try #require(holder.newer(than: generation))
        #expect(seen.runtime === second && seen.generation == generation + 1)
        #expect(holder.newer(than: seen.generation) == nil)
        #expect(holder.runtime === second)
    }

    @Test func aChangedPresignCacheStartsEmpty() throws {
        let keys = UpstreamKeys(upstreams: 1)
        let first = try Self.runtime(try Self.config(), keys: keys)
        let smaller = try Self.config(Self.yaml + "\npresign_cache: {max_entries: 10}")
        let second = try Self.runtime(smaller, previous: first, keys: keys)
        #expect(second.presignCache !== first.presignCache)
        #expect(second.presignCache.configuration.capacity == 10)
    }

    @Test func routeCountsSinceStartSurviveAReload() {
        let traffic = RouteTraffic()
        let before = RouteCounters()
        before.record(status: 200, cutShort: false)
        let gone = RouteCounters()
        gone.record(status: 500, cutShort: false)
        traffic.publish([("api", before), ("gone", gone)])
        let after = RouteCounters()
        after.record(status: 404, cutShort: false)
        traffic.publish([("api", after), ("new", RouteCounters())], keepingPrevious: true)
        // A request that started before the reload still counts where it started.
        before.record(status: 200, cutShort: false)
        let snapshot = Dictionary(uniqueKeysWithValues: traffic.snapshot().map { ($0.route, $0.traffic) })
        #expect(traffic.snapshot().map(\.route) == ["api", "new"])
        #expect(snapshot["api"] == RouteTrafficSnapshot(requests: 3, clientErrors: 1))
        #expect(snapshot["new"] == RouteTrafficSnapshot())
    }

    // MARK: - Configuration keys

    @Test func reloadKeysAreRead() throws {
        #expect(try Self.config().reload.secretFilesInterval == .seconds(5))
        #expect(try Self.config().admin.reloadEndpoint == false)
        let on = try Self.config(Self.yaml + "\nadmin: {reload_endpoint: true}\nreload: {secret_files_interval: 250ms}")
        #expect(on.admin.reloadEndpoint)
        #expect(on.reload.secretFilesInterval == .milliseconds(250))
        #expect(try Self.config(Self.yaml + "\nreload: {secret_files_interval: off}").reload.secretFilesInterval == nil)
        #expect(try Self.config(Self.yaml + "\nreload: {secret_files_interval: 0s}").reload.secretFilesInterval == nil)
        #expect(throws: ConfigError.self) { try Self.config(Self.yaml + "\nreload: {secret_files_interval: 10ms}") }
        do {
            _ = try Self.config(Self.yaml + "\nreload: {secret_files_interval: soon, watch: true}")
            Issue.record("accepted")
        } catch let error as ConfigError {
            #expect(Set(error.issues.map(\.path)) == ["reload.watch", "reload.secret_files_interval"], "\(error)")
        }
    }

    @Test func aLoadSaysWhichSecretFilesItReadAndWhatTheyHeld() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent(
            "credgate-reload-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let file = directory.appendingPathComponent("credgate.yaml")
        try Self.yaml.write(to: file, atomically: true, encoding: .utf8)
        let password = directory.appendingPathComponent("password")
        try "pw-1\n".write(to: password, atomically: true, encoding: .utf8)
        let source = ConfigSource(paths: [file.path], environment: ["KEY": "k", "PASSWORD_FILE": password.path])
        let loaded = source.load()
        #expect((try? loaded.result.get()) != nil)
        #expect(loaded.secretFiles.map(\.path) == [password.path])
        #expect(loaded.secretFiles == [SecretFileState.current(password.path)])
        // Rewritten with the same content: not a change. Another content, or gone: a change.
        try "pw-1\n".write(to: password, atomically: true, encoding: .utf8)
        #expect(loaded.secretFiles == [SecretFileState.current(password.path)])
        try "pw-2\n".write(to: password, atomically: true, encoding: .utf8)
        #expect(loaded.secretFiles != [SecretFileState.current(password.path)])
        try FileManager.default.removeItem(at: password)
        #expect(SecretFileState.current(password.path).content == .unreadable)
        // A load that fails for want of the file still names it, so it is watched until it is back.
        let failed = source.load()
        #expect((try? failed.result.get()) == nil)
        #expect(failed.secretFiles == [SecretFileState(path: password.path, content: .unreadable)])
    }

    @Test func sessionSettingsCompareTheirSecrets() throws {
        guard case .jwtSession(let a)? = try Self.config().credentials["session"]?.kind,
            case .jwtSession(let b)? = try Self.config(password: "pw-2").credentials["session"]?.kind
        else {
            Issue.record("no session")
            return
        }
        #expect(a == a)
        #expect(a != b)
        // The description never shows the value compared.
        #expect(!"\(a)".contains("pw-1"))
    }
}
