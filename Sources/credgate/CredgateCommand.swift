import ArgumentParser
import CredGate
import Foundation
import Logging
import Sandbox

@main
struct CredgateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "credgate",
        abstract: "A local gateway that holds an API platform's credentials so that apps don't have to.",
        version: CredGateVersion.string,
        subcommands: [
            Serve.self, CheckConfig.self, StatusCommand.self, WaitCommand.self, ReloadCommand.self, DoctorCommand.self,
            SandboxCommand.self,
        ],
        defaultSubcommand: Serve.self
    )
}

/// Options shared by the commands that read a configuration.
struct ConfigOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "Configuration file; give it once per platform profile to serve several, each on its own listener (env CREDGATE_CONFIG, comma-separated).",
            valueName: "path"))
    var config: [String] = []

    var resolvedPaths: [String] {
        if !config.isEmpty { return config }
        if let env = ProcessInfo.processInfo.environment["CREDGATE_CONFIG"], !env.isEmpty {
            return env.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        return ["Config/credgate.yaml"]
    }

    /// The files as a person reads them in a message.
    var shownPaths: String { resolvedPaths.joined(separator: ", ") }
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Listen for requests and forward them to the platform with the route's credentials.")

    @OptionGroup var configOptions: ConfigOptions

    @Option(
        help:
            "Address every listener listens on, overriding the config (env CREDGATE_HOST; empty: the config's; default 127.0.0.1)."
    )
    var host: String?

    @Option(help: "Port to listen on, overriding the config (env CREDGATE_PORT; default 8080; 0 picks a free one).")
    var port: Int?

    @Flag(
        help:
            "Start the built-in platform emulators (the Assured sandbox) on free loopback ports and point their upstreams at them."
    )
    var sandbox = false

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical (env CREDGATE_LOG_LEVEL).")
    var logLevel: String?

    @Option(help: "Access log format: json or text, overriding the config's log.format (env CREDGATE_LOG_FORMAT).")
    var logFormat: String?

    @Option(
        help: ArgumentHelp(
            "Write the process id to this file while serving, for `credgate reload` (env CREDGATE_PID_FILE).",
            valueName: "path"))
    var pidFile: String?

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        let logger = makeLogger(level: logLevel ?? env["CREDGATE_LOG_LEVEL"])
        var environment = env
        var platforms = sandbox ? try await SandboxLauncher.start(into: &environment) : []
        let overrides = try Overrides(
            format: (logFormat ?? env["CREDGATE_LOG_FORMAT"]).map { text in
                guard let format = AccessLog.Format(rawValue: text.lowercased()) else {
                    throw ValidationError("the access log format must be json or text, got '\(text)'")
                }
                return format
            },
            // An empty CREDGATE_HOST (`CREDGATE_HOST=` in a pod spec) undoes the image's 0.0.0.0: the files decide.
            host: (host ?? env["CREDGATE_HOST"]).flatMap { $0.isEmpty ? nil : $0 },
            port: port ?? env["CREDGATE_PORT"].map(parsePort),
            shownPaths: configOptions.shownPaths)
        // A reload reads the files as the start did: the same environment, the same overrides, the same sandboxes
        // (those the configuration named at start: the others are stopped below).
        let pointedAt = LockedPlatforms(platforms)
        let source = ConfigSource(paths: configOptions.resolvedPaths, environment: environment) {
            config throws(ConfigError) in
            try overrides.apply(to: SandboxLauncher.pointed(config, at: pointedAt.platforms))
        }
        let loaded = source.load()
        let config: GatewayConfig
        switch loaded.result {
        case .success(let value):
            config = value
        case .failure(let error):
            printError("credgate: refusing to start, \(error.issues.count) problem(s) in \(configOptions.shownPaths):")
            for issue in error.issues { printError("  \(issue)") }
            for platform in platforms { try? await platform.shutdown() }
            throw ExitCode(1)
        }
        // Only the platforms the configuration names keep running.
        for platform in platforms where config.upstreams[platform.upstream] == nil { try? await platform.shutdown() }
        platforms = platforms.filter { config.upstreams[$0.upstream] != nil }
        pointedAt.platforms = platforms

        let gateway: Gateway
        do {
            gateway = try await Gateway.start(config: config, logger: logger)
        } catch {
            printError("credgate: \(error)")
            for platform in platforms { try? await platform.shutdown() }
            throw ExitCode(1)
        }
        if env["CREDGATE_KEEP_STARTUP_PAGES"] != "1" {
            // Once ready (the first logins done; at most 10 s), start-up's code is done with: what later runs comes
            // back when it runs.
            Task.detached(priority: .background) {
                for _ in 0..<100 where !gateway.isReady { try? await Task.sleep(for: .milliseconds(100)) }
                let released = ResidentCode.releaseStartupPages()
                logger.debug("start-up pages released", metadata: ["bytes": "\(released)"])
            }
        }
        gateway.runtime.admin.quit.onRequest {
            logger.notice("POST /credgate/quitquitquit: draining as for SIGTERM")
            SignalWaiter.requestTermination()
        }
        let reloader = Reloader(gateway: gateway, source: source, secretFiles: loaded.secretFiles, logger: logger)
        gateway.runtime.admin.reload.onRequest { await reloader.reload(trigger: "POST /credgate/reload") }
        reloader.startWatchingSecretFiles()
        SignalWaiter.onHangUp {
            logger.notice("SIGHUP received: reloading the configuration")
            Task { await reloader.reload(trigger: "SIGHUP") }
        }
        let pidFile = pidFile ?? env["CREDGATE_PID_FILE"].flatMap { $0.isEmpty ? nil : $0 }
        if let pidFile {
            do {
                try PIDFile.write(pidFile)
            } catch {
                printError("credgate: cannot write the pid file '\(pidFile)': \(error.localizedDescription)")
                try? await gateway.shutdown()
                for platform in platforms { try? await platform.shutdown() }
                throw ExitCode(1)
            }
        }
        let addresses = zip(config.listeners, gateway.ports).map { listener, port in
            (
                listener: listener,
                url:
                    "http://\(listener.listen.host.contains(":") ? "[\(listener.listen.host)]" : listener.listen.host):\(port)"
            )
        }
        for (listener, url) in addresses {
            logger.notice(
                "credgate listening",
                metadata: ["address": "\(url)", "listener": "\(listener.name)", "routes": "\(listener.routes.count)"])
        }
        // Scripts read "listening on URL" (the first listener's), "and NAME on URL" for the others, and "sandbox at
        // URL" from this line (Tests/compat/run-assured-py.sh, run-wriftai.sh).
        let others = addresses.dropFirst().map { ", and \($0.listener.name) on \($0.url)" }.joined()
        let listening = addresses[0].url
        if !platforms.isEmpty {
            for platform in platforms {
                logger.notice(
                    "sandbox platform started",
                    metadata: ["upstream": "\(platform.upstream)", "address": "\(platform.baseURL)"])
            }
            let sandboxes = platforms.map { "'\($0.upstream)' to the sandbox at \($0.baseURL)" }.joined(separator: ", ")
            say("credgate \(CredGateVersion.string) listening on \(listening)\(others), forwarding \(sandboxes)")
            for platform in platforms {
                let url =
                    addresses.first { $0.listener.routes.contains { $0.upstream == platform.upstream } }?.url
                    ?? listening
                say("try: curl \(url)\(platform.example)")
            }
        } else {
            let routes = config.allRoutes.count
            say("credgate \(CredGateVersion.string) listening on \(listening)\(others) with \(routes) route(s)")
        }
        await SignalWaiter.waitForTermination()
        reloader.stop()
        // The settings of the configuration serving now (a reload may have changed them).
        let shutdown = gateway.runtime.config.shutdown
        logger.notice(
            "credgate draining: readiness is 503; a second SIGTERM or SIGINT exits at once",
            metadata: [
                "delay": "\(shutdown.delay)", "grace": "\(shutdown.grace)",
            ])
        let cut = try await gateway.drain(delay: shutdown.delay, grace: shutdown.grace)
        logger.notice("credgate stopped", metadata: ["connections_cut": "\(cut)"])
        if let pidFile { PIDFile.remove(pidFile) }
        for platform in platforms { try? await platform.shutdown() }
    }

    /// The command line's settings that win over every configuration loaded, at start and at each reload.
    struct Overrides: Sendable {
        var format: AccessLog.Format?
        var host: String?
        var port: Int?
        var shownPaths: String

        func apply(to loaded: GatewayConfig) throws(ConfigError) -> GatewayConfig {
            var config = loaded
            if let format { config.log.format = format }
            if let host {
                for i in config.listeners.indices { config.listeners[i].listen.host = host }
            }
            if let port {
                // With several listeners, --port 0 gives each a free port; another port fits one listener only.
                guard config.listeners.count == 1 || port == 0 else {
                    throw ConfigError(issues: [
                        ConfigIssue(
                            path: "--port",
                            message:
                                "--port (CREDGATE_PORT) sets one listener's port, but \(shownPaths) has \(config.listeners.count) listeners: set each file's listen.port, or use --port 0 for free ports"
                        )
                    ])
                }
                for i in config.listeners.indices { config.listeners[i].listen.port = port }
            }
            return config
        }
    }

    /// The sandbox platforms a reload points upstreams at: set once the first load said which are used.
    final class LockedPlatforms: @unchecked Sendable {
        private let lock = NSLock()
        private var value: [SandboxPlatform]
        init(_ platforms: [SandboxPlatform]) { value = platforms }
        var platforms: [SandboxPlatform] {
            get { lock.withLock { value } }
            set { lock.withLock { value = newValue } }
        }
    }

    private func parsePort(_ s: String) throws -> Int {
        guard let p = Int(s), (0...65535).contains(p) else {
            throw ValidationError("CREDGATE_PORT must be a port number, got '\(s)'")
        }
        return p
    }
}

struct CheckConfig: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Check a configuration and print every problem with its YAML path; exits 1 if there is any.")

    @OptionGroup var configOptions: ConfigOptions

    func run() throws {
        do {
            let config = try ConfigLoader.load(
                paths: configOptions.resolvedPaths, environment: ProcessInfo.processInfo.environment)
            print(
                "\(configOptions.shownPaths): OK (\(config.upstreams.count) upstream(s), \(config.credentials.count) credential(s), \(config.allRoutes.count) route(s))"
            )
            if config.listeners.count > 1 {
                for listener in config.listeners {
                    print(
                        "  listener \(listener.name): \(listener.listen.host):\(listener.listen.port), \(listener.routes.count) route(s)"
                    )
                }
            }
        } catch {
            for issue in error.issues { print(issue) }
            printError("\(configOptions.shownPaths): \(error.issues.count) problem(s)")
            throw ExitCode(1)
        }
    }
}

struct SandboxCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sandbox",
        abstract: "Run the emulator of the Assured platform on its own, for trying credgate without an account.")

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "Port to listen on (0 picks a free one).")
    var port = 8081

    @Option(help: "The API key the sandbox accepts (default: env SANDBOX_API_KEY, else a random one that is printed).")
    var apiKey: String?

    @Option(help: "The user the sandbox lets log in (default: env SANDBOX_USER, else provider-admin@example.com).")
    var user: String?

    @Option(help: "That user's password (default: env SANDBOX_PASS, else 'correct horse battery staple').")
    var password: String?

    @Option(help: "Lifetime of the access tokens it issues, in seconds (the platform's is about 10080).")
    var accessLifetime: Int = 10_080

    func run() async throws {
        let env = ProcessInfo.processInfo.environment
        let key = apiKey ?? env["SANDBOX_API_KEY"]
        let chosen = key ?? ("sandbox-" + UUID().uuidString.lowercased())
        if key == nil {
            print("sandbox API key (random, for this run only): \(chosen)")
        }
        var options = SandboxOptions(
            apiKey: chosen, host: host, port: port,
            user: user ?? env["SANDBOX_USER"] ?? "provider-admin@example.com",
            password: password ?? env["SANDBOX_PASS"] ?? "correct horse battery staple")
        options.accessLifetime = .seconds(accessLifetime)
        try await SandboxServer.run(options)
    }
}

func makeLogger(level: String?) -> Logger {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = .info
        return handler
    }
    var logger = Logger(label: "credgate")
    logger.logLevel = level.flatMap { Logger.Level(rawValue: $0.lowercased()) } ?? .info
    return logger
}

/// Writes a line to standard output unbuffered, so scripts waiting for it see it at once.
func say(_ s: String) {
    FileHandle.standardOutput.write(Data((s + "\n").utf8))
}

func printError(_ s: String) {
    FileHandle.standardError.write(Data((s + "\n").utf8))
}
