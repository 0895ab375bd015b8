import Crypto
import Foundation

/// Where a running gateway's configuration comes from, so that a reload reads it exactly as the start did: the
/// same files, the same environment (captured at start: a process cannot see its environment change), then the
/// same adjustments (the command line's `--host`, `--port`, `--sandbox`).
public struct ConfigSource: Sendable {
    var paths: [String]
    var environment: [String: String]
    /// Applied to every configuration loaded; may refuse one with issues of its own.
    var adjust: @Sendable (GatewayConfig) throws(ConfigError) -> GatewayConfig

    public init(
        paths: [String], environment: [String: String],
        adjust: @escaping @Sendable (GatewayConfig) throws(ConfigError) -> GatewayConfig = { $0 }
    ) {
        self.paths = paths
        self.environment = environment
        self.adjust = adjust
    }

    /// One load: the configuration or its problems, and the `*_FILE` secrets it read with what they held then.
    public struct Loaded: Sendable {
        public var result: Result<GatewayConfig, ConfigError>
        /// The secret files, each with the digest of what this load read from it: the baseline the watcher
        /// compares with, so a change made while the load ran is still seen.
        public var secretFiles: [SecretFileState]
    }

    public func load() -> Loaded {
        final class Reads {
            var digests: [String: SecretFileState.Content] = [:]
        }
        let reads = Reads()
        var files: [String] = []
        let result: Result<GatewayConfig, ConfigError>
        do throws(ConfigError) {
            let config = try ConfigLoader.load(
                paths: paths, environment: environment,
                readFile: { path in
                    do {
                        let text = try ConfigLoader.readTextFile(path)
                        reads.digests[path] = .digest(SecretFileState.digest(text))
                        return text
                    } catch {
                        reads.digests[path] = .unreadable
                        throw error
                    }
                }, secretFiles: &files)
            result = .success(try adjust(config))
        } catch {
            result = .failure(error)
        }
        return Loaded(
            result: result,
            secretFiles: files.map { SecretFileState(path: $0, content: reads.digests[$0] ?? .unreadable) })
    }
}

/// A `*_FILE` secret as last seen: its path and a digest of its content (never the content). Kubernetes rotates a
/// mounted Secret by pointing a `..data` symlink at a new directory, so the file's own modification time says
/// nothing; the content read through the link is what counts.
public struct SecretFileState: Sendable, Equatable {
    enum Content: Sendable, Equatable {
        case digest([UInt8])
        case unreadable
    }

    var path: String
    var content: Content

    /// What the file holds now.
    static func current(_ path: String) -> SecretFileState {
        guard let text = try? ConfigLoader.readTextFile(path) else {
            return SecretFileState(path: path, content: .unreadable)
        }
        return SecretFileState(path: path, content: .digest(digest(text)))
    }

    static func digest(_ text: String) -> [UInt8] { Array(SHA256.hash(data: Data(text.utf8))) }
}
