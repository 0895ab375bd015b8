import Yams

/// `credentials:`: one reader per `kind`. A new kind adds a case to ``credentialKinds`` and to the switch.
extension ConfigLoader {
    /// The kinds of credential this build knows, as written in `kind:`.
    static let credentialKinds = ["api_key"]

    /// Headers that frame or route the request: a credential written there would break the exchange.
    static let reservedHeaders: Set<String> = [
        "connection", "content-length", "host", "keep-alive", "proxy-connection", "te", "trailer",
        "transfer-encoding", "upgrade",
    ]

    static func readCredentials(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> Named<CredentialConfig> {
        named(node, at: path, w, what: "credential") { name, node, path in
            guard let all = w.mapping(node, at: path, allowed: nil) else { return nil }
            guard let kind = w.required(all, "kind", { w.scalar($0, at: $1) }) else {
                return nil
            }
            switch kind.value {
            case "api_key":
                let f = w.only(["kind", "header", "value"], in: all)
                let header = w.required(f, "header") { headerName($0, at: $1, w) }
                let value = w.required(f, "value") { secret($0, at: $1, w) }
                guard let header, let value else { return nil }
                return CredentialConfig(name: name, kind: .apiKey(header: header, value: value))
            default:
                w.issue(path.key("kind"), "unknown credential kind \(kind.shown) "
                        + "(expected one of: \(credentialKinds.joined(separator: ", ")))")
                return nil
            }
        }
    }

    static func headerName(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> String? {
        guard let name = w.scalar(node, at: path) else { return nil }
        guard HTTPToken.isValid(name.value) else {
            let why = name.value.isEmpty ? "empty" : "not an HTTP token (letters, digits and !#$%&'*+-.^_`|~)"
            w.issue(path, "\(name.shown) is not a header name: \(why)")
            return nil
        }
        guard !reservedHeaders.contains(name.value.lowercased()) else {
            w.issue(path, "header '\(name.value)' cannot carry a credential: the gateway manages it")
            return nil
        }
        return name.value
    }

    /// A credential's value. Messages here never show it, not even quoted as written: it may be a literal key.
    static func secret(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> Secret? {
        guard let value = w.scalar(node, at: path) else { return nil }
        if value.value.isEmpty {
            w.issue(path, "is empty")
            return nil
        }
        guard HTTPToken.isValidFieldValue(value.value) else {
            w.issue(path, "contains characters a header value cannot have (a line break or another control character)")
            return nil
        }
        return Secret(value.value)
    }
}
