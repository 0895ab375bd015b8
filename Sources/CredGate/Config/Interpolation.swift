import Foundation

/// Expands `${VAR}`, `${VAR:-default}` and `$$` in a configuration string, once, at load time.
///
/// The rules are the shell's, because users bring `.env` files: `${VAR:-default}` takes the default when `VAR`
/// is unset *or empty*, `${VAR}` keeps an empty value. When `VAR` is unset but `VAR_FILE` names a file, the
/// file's content (trailing newlines removed) is the value, which is how Docker and Kubernetes hand over secrets.
/// A `$` not followed by `{` or `$` is kept as is.
///
/// Problems are returned as messages that name variables and files, never a value: the value may be a secret.
struct Interpolator {
    let environment: [String: String]
    let readFile: (String) throws -> String
    /// Told the path of every `VAR_FILE` secret read (or tried), so a running gateway can watch them.
    var secretFileUsed: ((String) -> Void)? = nil

    struct Result {
        /// The expanded text; meaningless when `problems` is not empty.
        var text: String
        /// Whether a variable was read: such a text may hold a secret and is never shown in a message.
        var usedEnvironment: Bool
        var problems: [String]
    }

    func expand(_ input: String) -> Result {
        var result = Result(text: "", usedEnvironment: false, problems: [])
        var rest = input[...]
        while let dollar = rest.firstIndex(of: "$") {
            result.text += rest[..<dollar]
            let after = rest[rest.index(after: dollar)...]
            if after.first == "$" {
                result.text += "$"
                rest = after.dropFirst()
                continue
            }
            guard after.first == "{" else {
                result.text += "$"
                rest = after
                continue
            }
            let body = after.dropFirst()
            guard let close = Self.closingBrace(in: body) else {
                result.problems.append("unterminated '${' (write '$$' for a literal '$')")
                return result
            }
            rest = body[body.index(after: close)...]
            let reference = body[..<close]
            let name: Substring
            let fallback: Substring?
            if let separator = reference.firstRange(of: ":-") {
                name = reference[..<separator.lowerBound]
                fallback = reference[separator.upperBound...]
            } else {
                name = reference
                fallback = nil
            }
            guard Self.isVariableName(name) else {
                result.problems.append(
                    "'${...}' must hold a variable name (letters, digits and '_', not starting with a digit), "
                        + "optionally followed by ':-default'")
                continue
            }
            result.usedEnvironment = true
            switch lookup(String(name)) {
            case .value(let value) where value.isEmpty && fallback != nil:
                result.text += expandFallback(fallback ?? "", into: &result)
            case .value(let value):
                result.text += value
            case .unset:
                if let fallback {
                    result.text += expandFallback(fallback, into: &result)
                } else {
                    result.problems.append(
                        "environment variable \(name) is not set (set it, or \(name)_FILE)")
                }
            case .unreadable(let message):
                result.problems.append(message)
            }
        }
        result.text += rest
        return result
    }

    /// A default may itself hold references, as in the shell: `${AWS_REGION:-${AWS_DEFAULT_REGION}}`.
    private func expandFallback(_ fallback: Substring, into result: inout Result) -> String {
        guard fallback.contains("$") else { return String(fallback) }
        let inner = expand(String(fallback))
        result.problems += inner.problems
        return inner.text
    }

    /// The `}` that closes a `${`, counting the `${...}` nested in its default.
    static func closingBrace(in body: Substring) -> Substring.Index? {
        var depth = 0
        var i = body.startIndex
        while i < body.endIndex {
            let c = body[i]
            if c == "$", body.index(after: i) < body.endIndex, body[body.index(after: i)] == "{" {
                depth += 1
                i = body.index(i, offsetBy: 2)
                continue
            }
            if c == "}" {
                if depth == 0 { return i }
                depth -= 1
            }
            i = body.index(after: i)
        }
        return nil
    }

    private enum Lookup {
        case value(String)
        case unset
        case unreadable(String)
    }

    private func lookup(_ name: String) -> Lookup {
        if let value = environment[name] { return .value(value) }
        guard let path = environment[name + "_FILE"] else { return .unset }
        secretFileUsed?(path)
        do {
            var content = try readFile(path)
            while content.last?.isNewline == true { content.removeLast() }
            return .value(content)
        } catch let failure as FileReadFailure {
            return .unreadable("cannot read \(name)_FILE '\(path)': \(failure.reason)")
        } catch {
            // An unknown error's description might quote the file; say only that it failed.
            return .unreadable("cannot read \(name)_FILE '\(path)'")
        }
    }

    static func isVariableName(_ name: Substring) -> Bool {
        guard let first = name.unicodeScalars.first, !("0"..."9").contains(first) else { return false }
        return name.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "_"
        }
    }
}

/// Why a file could not be read, in words that never include its content.
struct FileReadFailure: Error, CustomStringConvertible {
    var reason: String
    var description: String { reason }
}
