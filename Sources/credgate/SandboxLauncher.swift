import CredGate
import Foundation
import Sandbox

/// `--sandbox`: every platform emulator started, its variables put in the environment the configuration reads,
/// and the upstreams it stands for pointed at it. The command line knows no platform by name: each
/// ``SandboxPlatform`` says which upstream it replaces and which variables make the credentials work.
enum SandboxLauncher {
    static func start(into environment: inout [String: String]) async throws -> [SandboxPlatform] {
        let platforms = try await SandboxServer.startPlatforms()
        for platform in platforms {
            environment.merge(platform.environment) { $1 }
            for name in platform.unset { environment.removeValue(forKey: name) }
        }
        return platforms
    }

    /// `config` with each platform's upstream aimed at its emulator (base path kept).
    static func pointed(_ config: GatewayConfig, at platforms: [SandboxPlatform]) -> GatewayConfig {
        var config = config
        for platform in platforms {
            if let url = URLComponents(string: platform.baseURL), var upstream = config.upstreams[platform.upstream] {
                let path = url.path.hasSuffix("/") ? String(url.path.dropLast()) : url.path
                upstream.url = UpstreamURL(
                    scheme: .http, host: url.host ?? "127.0.0.1", port: url.port ?? 80, basePath: path)
                config.upstreams[platform.upstream] = upstream
            }
        }
        return config
    }
}
