/// Everything wrong with a configuration, found in one pass so a user fixes the file once, not once per error.
public struct ConfigError: Error, CustomStringConvertible {
    /// In the order they were found: the file's sections in the order `listen`, `upstreams`, `credentials`,
    /// `routes`, each from top to bottom.
    public var issues: [ConfigIssue]

    public init(issues: [ConfigIssue]) { self.issues = issues }

    /// One issue per line, as `path: message`.
    public var description: String { issues.map(\.description).joined(separator: "\n") }
}

/// One problem in a configuration, at the YAML path where it is (`routes[3].credentials[0]`), or `(file)` when
/// it is the file as a whole, or `line 7, column 3` when the text is not YAML.
///
/// A message names keys, variables and files, never a credential's value or an environment variable's value,
/// so it is safe to print in a CI log.
public struct ConfigIssue: Sendable, Equatable, CustomStringConvertible {
    var path: String
    var message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    public var description: String { "\(path): \(message)" }
}

/// A position in the YAML tree, printed the way a user would point at it: `upstreams.assured.url`,
/// `routes[2].methods[0]`. Keys that are not plain words are quoted so the path stays unambiguous.
struct ConfigPath: Sendable, CustomStringConvertible {
    private var text: String

    /// The document itself.
    static let root = ConfigPath(text: "")

    private init(text: String) { self.text = text }

    func key(_ key: String) -> ConfigPath {
        let plain = !key.isEmpty && key.unicodeScalars.allSatisfy { ConfigPath.plainKey.contains($0) }
        if !plain { return ConfigPath(text: text + "['\(key)']") }
        return ConfigPath(text: text.isEmpty ? key : text + "." + key)
    }

    func index(_ index: Int) -> ConfigPath { ConfigPath(text: text + "[\(index)]") }

    var description: String { text.isEmpty ? "(file)" : text }

    private static let plainKey = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-".unicodeScalars)
}
