import NIOCore
import Yams

/// A scalar after `${VAR}` expansion, with where it came from, so that a message can point at it without
/// printing what the environment put in it.
struct ConfigScalar {
    var value: String
    /// The text as written in the file (only variable names and defaults, never a variable's value).
    var written: String
    var usedEnvironment: Bool

    /// How a message may quote this scalar: the value when it was written in the file, else the reference.
    var shown: String { usedEnvironment ? "the expansion of '\(written)'" : "'\(value)'" }
}

/// A mapping's keys checked against the ones allowed, with its values by key.
struct ConfigFields {
    let path: ConfigPath
    let entries: [(key: String, value: Node)]

    /// The value of `key`, or nil when it is absent or `null` (an empty `key:` line means "not set").
    subscript(key: String) -> Node? {
        guard let node = entries.first(where: { $0.key == key })?.value, node.null == nil else { return nil }
        return node
    }

    /// Reads `key` with `read` when it is set; nil when it is absent or its value was bad (and reported).
    func value<T>(_ key: String, _ read: (Node, ConfigPath) -> T?) -> T? {
        self[key].flatMap { read($0, path.key(key)) }
    }
}

/// Walks a composed YAML tree and collects every problem with its path instead of stopping at the first, so
/// one run of `check-config` lists them all. Each reader returns nil after recording why.
final class ConfigWalker {
    private(set) var issues: [ConfigIssue] = []
    let interpolator: Interpolator

    init(interpolator: Interpolator) { self.interpolator = interpolator }

    func issue(_ path: ConfigPath, _ message: String) {
        issues.append(ConfigIssue(path: path.description, message: message))
    }

    /// A mapping whose keys must be in `allowed` (listed in the order they are documented); nil `allowed` takes
    /// any key (a map of names).
    func mapping(_ node: Node, at path: ConfigPath, allowed: [String]?) -> ConfigFields? {
        guard case .mapping(let mapping) = node else {
            issue(path, "expected a mapping (key: value lines), got \(Self.kind(of: node))")
            return nil
        }
        var entries: [(key: String, value: Node)] = []
        for (keyNode, value) in mapping {
            guard case .scalar(let key) = keyNode else {
                issue(path, "keys must be plain strings, got \(Self.kind(of: keyNode))")
                continue
            }
            entries.append((key.string, value))
        }
        let fields = ConfigFields(path: path, entries: entries)
        return allowed.map { only($0, in: fields) } ?? fields
    }

    /// `fields` without the keys not in `allowed`, each reported: for mappings whose keys depend on one of
    /// their values (a credential's `kind`).
    func only(_ allowed: [String], in fields: ConfigFields) -> ConfigFields {
        let known = fields.entries.filter { entry in
            if allowed.contains(entry.key) { return true }
            issue(
                fields.path.key(entry.key),
                "unknown key '\(entry.key)' (expected one of: \(allowed.joined(separator: ", ")))")
            return false
        }
        return ConfigFields(path: fields.path, entries: known)
    }

    /// Reads `key`, which must be present.
    func required<T>(_ fields: ConfigFields, _ key: String, _ read: (Node, ConfigPath) -> T?) -> T? {
        if let node = fields[key] { return read(node, fields.path.key(key)) }
        if fields.entries.contains(where: { $0.key == key }) {
            issue(fields.path.key(key), "has no value")
        } else {
            issue(fields.path, "missing required key '\(key)'")
        }
        return nil
    }

    func sequence(_ node: Node, at path: ConfigPath) -> [Node]? {
        guard case .sequence(let sequence) = node else {
            issue(path, "expected a list, got \(Self.kind(of: node))")
            return nil
        }
        return Array(sequence)
    }

    /// A scalar with `${VAR}` expanded.
    func scalar(_ node: Node, at path: ConfigPath) -> ConfigScalar? {
        guard case .scalar(let scalar) = node else {
            issue(path, "expected a single value, got \(Self.kind(of: node))")
            return nil
        }
        let expanded = interpolator.expand(scalar.string)
        guard expanded.problems.isEmpty else {
            for problem in expanded.problems { issue(path, problem) }
            return nil
        }
        return ConfigScalar(value: expanded.text, written: scalar.string, usedEnvironment: expanded.usedEnvironment)
    }

    /// A non-empty string.
    func string(_ node: Node, at path: ConfigPath) -> String? {
        guard let scalar = scalar(node, at: path) else { return nil }
        guard !scalar.value.isEmpty else {
            issue(path, scalar.usedEnvironment ? "\(scalar.shown) is empty" : "must not be empty")
            return nil
        }
        return scalar.value
    }

    /// A name of an upstream, a credential or a route: printable in logs and paths without quoting.
    func name(_ text: String, at path: ConfigPath) -> Bool {
        let allowed = text.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
                || $0 == "_" || $0 == "-" || $0 == "."
        }
        if !text.isEmpty && allowed { return true }
        issue(path, "bad name '\(text)' (use letters, digits, '_', '-' and '.')")
        return false
    }

    func integer(_ node: Node, at path: ConfigPath, in range: ClosedRange<Int>) -> Int? {
        guard let scalar = scalar(node, at: path) else { return nil }
        guard scalar.value.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == "-") }), let number = Int(scalar.value)
        else {
            issue(path, "expected an integer, got \(scalar.shown)")
            return nil
        }
        guard range.contains(number) else {
            issue(path, "\(number) is out of range: \(Self.describe(range))")
            return nil
        }
        return number
    }

    /// A duration greater than zero: a zero timeout is always a mistake.
    func duration(_ node: Node, at path: ConfigPath) -> TimeAmount? {
        guard let scalar = scalar(node, at: path) else { return nil }
        switch Quantity.duration(scalar.value) {
        case .success(let amount) where amount.nanoseconds > 0:
            return amount
        case .success:
            issue(path, "must be greater than 0")
        case .failure(.malformed):
            issue(path, "expected a duration (\(Quantity.durationHint)), got \(scalar.shown)")
        case .failure(.tooLarge):
            issue(path, "\(scalar.shown) is too long a duration")
        }
        return nil
    }

    func byteSize(_ node: Node, at path: ConfigPath, in range: ClosedRange<Int64>) -> Int64? {
        guard let scalar = scalar(node, at: path) else { return nil }
        switch Quantity.byteSize(scalar.value) {
        case .success(let size) where range.contains(size):
            return size
        case .success(let size):
            issue(path, "\(size) bytes is out of range: \(Self.describe(range))")
        case .failure(.malformed):
            issue(path, "expected a size (\(Quantity.sizeHint)), got \(scalar.shown)")
        case .failure(.tooLarge):
            issue(path, "\(scalar.shown) is too large a size")
        }
        return nil
    }

    private static func describe<T: FixedWidthInteger>(_ range: ClosedRange<T>) -> String {
        range.upperBound == T.max
            ? "must be at least \(range.lowerBound)"
            : "must be between \(range.lowerBound) and \(range.upperBound)"
    }

    static func kind(of node: Node) -> String {
        switch node {
        case .mapping: return "a mapping"
        case .sequence: return "a list"
        case .scalar: return node.null == nil ? "a single value" : "nothing"
        case .alias: return "an alias"
        }
    }
}
