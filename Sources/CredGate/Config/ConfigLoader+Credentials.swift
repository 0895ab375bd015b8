import Foundation
import NIOCore
import Yams

/// `credentials:`: one reader per `kind`. A new kind adds a case to ``credentialKinds`` and to the switch.
extension ConfigLoader {
    /// The kinds of credential this build knows, as written in `kind:`.
    static let credentialKinds = ["api_key", "jwt_session", "aws_sigv4"]

    /// Headers that frame or route the request: a credential written there would break the exchange.
    static let reservedHeaders: Set<String> = [
        "connection", "content-length", "host", "keep-alive", "proxy-connection", "te", "trailer",
        "transfer-encoding", "upgrade",
    ]

    /// `upstreams`: the names declared under `upstreams:`, which a `jwt_session` must refer to (nil: not checked).
    static func readCredentials(
        _ node: Node, at path: ConfigPath, upstreams: [String]? = nil, _ w: ConfigWalker
    ) -> Named<CredentialConfig> {
        named(node, at: path, w, what: "credential") { name, node, path in
            guard let all = w.mapping(node, at: path, allowed: nil) else { return nil }
            guard let kind = w.required(all, "kind", { w.scalar($0, at: $1) }) else {
                return nil
            }
            switch kind.value {
            case "api_key":
                let f = w.only(["kind", "header", "value", "probe"], in: all)
                let header = w.required(f, "header") { headerName($0, at: $1, w) }
                let value = w.required(f, "value") { secret($0, at: $1, w) }
                let probe = f.value("probe") { credentialProbe($0, at: $1, upstreams: upstreams, w) }
                guard let header, let value else { return nil }
                var credential = CredentialConfig(name: name, kind: .apiKey(header: header, value: value))
                credential.probe = probe
                return credential
            case "jwt_session":
                let f = w.only(jwtSessionKeys, in: all)
                guard let session = jwtSession(f, upstreams: upstreams, w) else { return nil }
                return CredentialConfig(name: name, kind: .jwtSession(session))
            case "aws_sigv4":
                guard let credentials = awsSigV4(w.only(awsSigV4Keys, in: all), w) else { return nil }
                return CredentialConfig(name: name, kind: .awsSigV4(credentials))
            default:
                w.issue(
                    path.key("kind"),
                    "unknown credential kind \(kind.shown) "
                        + "(expected one of: \(credentialKinds.joined(separator: ", ")))")
                return nil
            }
        }
    }

    /// `probe: {path, method, upstream}` for `credgate doctor`.
    static func credentialProbe(_ node: Node, at path: ConfigPath, upstreams: [String]?, _ w: ConfigWalker)
        -> CredentialProbe?
    {
        guard let f = w.mapping(node, at: path, allowed: ["path", "method", "upstream"]) else { return nil }
        let probePath = w.required(f, "path") { node, at -> String? in
            guard let v = w.string(node, at: at) else { return nil }
            guard v.hasPrefix("/") else {
                w.issue(at, "must be a platform path starting with '/'")
                return nil
            }
            return v
        }
        let method = f.value("method") { node, at -> String? in
            guard let v = w.string(node, at: at) else { return nil }
            guard ["GET", "HEAD", "OPTIONS"].contains(v.uppercased()) else {
                w.issue(at, "a probe must not change anything: GET, HEAD or OPTIONS")
                return nil
            }
            return v.uppercased()
        }
        let upstream = f.value("upstream") { node, at -> String? in
            guard let v = w.string(node, at: at) else { return nil }
            if let upstreams, !upstreams.contains(v) {
                w.issue(at, "unknown upstream '\(v)'")
                return nil
            }
            return v
        }
        guard let probePath else { return nil }
        return CredentialProbe(path: probePath, method: method ?? "GET", upstream: upstream)
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

// MARK: - jwt_session

/// `kind: jwt_session`: a platform's login and refresh described as data (see ``JWTSessionConfig``).
extension ConfigLoader {
    static let jwtSessionKeys = [
        "kind", "upstream", "login", "refresh", "header", "format", "default_lifetime", "refresh_margin", "backoff",
        "circuit_breaker", "placeholder_login", "required_for_ready",
    ]
    static let loginCallKeys = ["method", "path", "body", "headers", "access_token", "refresh_token"]
    static let refreshCallKeys = loginCallKeys + ["send_access_token"]

    static func jwtSession(_ f: ConfigFields, upstreams: [String]?, _ w: ConfigWalker) -> JWTSessionConfig? {
        let upstream = w.required(f, "upstream") { node, path -> String? in
            guard let upstreams else { return w.string(node, at: path) }
            return reference(node, at: path, in: upstreams, "upstream", w)
        }
        let login = w.required(f, "login") { sessionCall($0, at: $1, keys: loginCallKeys, w) }
        let refresh = f.value("refresh") { sessionCall($0, at: $1, keys: refreshCallKeys, w) }
        let header = f.value("header") { headerName($0, at: $1, w) }
        let format = f.value("format") { tokenFormat($0, at: $1, w) }
        let lifetime = f.value("default_lifetime") { w.duration($0, at: $1) }
        let margin = f.value("refresh_margin") { w.duration($0, at: $1) }
        let backoff = f.value("backoff") { backoffSettings($0, at: $1, w) }
        let circuit = f.value("circuit_breaker") { circuitSettings($0, at: $1, w) }
        let placeholder = f.value("placeholder_login") { boolean($0, at: $1, w) }
        let requiredForReady = f.value("required_for_ready") { boolean($0, at: $1, w) }

        if let login, let refresh, refresh.body.reveal().contains("{refresh_token}"), login.refreshTokenPath == nil {
            w.issue(
                f.path.key("refresh").key("body"),
                "uses {refresh_token}, but login.refresh_token does not say where the login answer holds one")
        }
        guard let upstream, let login else { return nil }
        var session = JWTSessionConfig(upstream: upstream, login: login)
        session.refresh = refresh
        if let header { session.header = header }
        if let format { session.format = format }
        if let lifetime { session.defaultLifetime = lifetime }
        session.refreshMargin = margin
        if let backoff {
            if let initial = backoff.initial { session.backoffInitial = initial }
            if let max = backoff.max { session.backoffMax = max }
        }
        if session.backoffMax < session.backoffInitial {
            w.issue(
                f.path.key("backoff").key(backoff?.max == nil ? "initial" : "max"),
                "backoff.max must be at least backoff.initial (default initial 1s, max 5m)")
        }
        if let circuit {
            if let failures = circuit.failures { session.circuitFailures = failures }
            if let openFor = circuit.openFor { session.circuitOpenFor = openFor }
        }
        if let placeholder { session.placeholderLogin = placeholder }
        if let requiredForReady { session.requiredForReady = requiredForReady }
        if session.placeholderLogin, (try? PathPattern(session.placeholderLoginPath)) == nil {
            w.issue(
                f.path.key("placeholder_login"),
                "the login path '\(session.placeholderLoginPath)' cannot be answered locally: it is not a plain path")
        }
        return session
    }

    /// `login:` or `refresh:`. The body is a secret (it holds the password after expansion) and is never quoted.
    static func sessionCall(_ node: Node, at path: ConfigPath, keys: [String], _ w: ConfigWalker) -> JWTSessionConfig
        .Call?
    {
        guard let f = w.mapping(node, at: path, allowed: keys) else { return nil }
        let method = f.value("method") { node, path -> String? in
            guard let method = w.scalar(node, at: path) else { return nil }
            guard HTTPToken.isValid(method.value) else {
                w.issue(path, "\(method.shown) is not an HTTP method (a token such as GET or POST)")
                return nil
            }
            return method.value.uppercased()
        }
        let callPath = w.required(f, "path") { requestPath($0, at: $1, w) }
        let body = w.required(f, "body") { jsonBody($0, at: $1, w) }
        let headers = f.value("headers") { callHeaders($0, at: $1, w) }
        let access = w.required(f, "access_token") { dottedPath($0, at: $1, w) }
        let refresh = f.value("refresh_token") { dottedPath($0, at: $1, w) }
        let send = f.value("send_access_token") { boolean($0, at: $1, w) }
        guard let callPath, let body, let access else { return nil }
        var call = JWTSessionConfig.Call(path: callPath, body: body, accessTokenPath: access, refreshTokenPath: refresh)
        if let method { call.method = method }
        if let headers { call.headers = headers }
        if let send { call.sendAccessToken = send }
        return call
    }

    /// A path (and query) on the upstream: starts with `/`, printable ASCII without spaces.
    static func requestPath(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> String? {
        guard let text = w.scalar(node, at: path) else { return nil }
        guard text.value.hasPrefix("/") else {
            w.issue(path, "\(text.shown) must start with '/'")
            return nil
        }
        guard text.value.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }), !text.value.contains("#")
        else {
            w.issue(
                path,
                "\(text.shown) is not a request path (printable ASCII without spaces or '#'; "
                    + "percent-encode anything else)")
            return nil
        }
        return text.value
    }

    /// A JSON body template, checked to be JSON after expansion with `{refresh_token}` and `{access_token}` filled
    /// in. Messages never show it: after expansion it holds a password.
    static func jsonBody(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> Secret? {
        guard let text = w.scalar(node, at: path) else { return nil }
        let sample = text.value.replacingOccurrences(of: "{refresh_token}", with: "token")
            .replacingOccurrences(of: "{access_token}", with: "token")
        guard (try? JSONSerialization.jsonObject(with: Data(sample.utf8), options: [.fragmentsAllowed])) != nil else {
            let hint =
                text.usedEnvironment
                ? " (if it is valid as written, a variable's value may hold a '\"' or '\\' that needs escaping)" : ""
            w.issue(path, "is not valid JSON after expansion\(hint)")
            return nil
        }
        return Secret(text.value)
    }

    /// `headers:` of a call: header name to secret value.
    static func callHeaders(
        _ node: Node, at path: ConfigPath, _ w: ConfigWalker
    ) -> [(name: String, value: Secret)]? {
        guard let f = w.mapping(node, at: path, allowed: nil) else { return nil }
        var headers: [(name: String, value: Secret)] = []
        var valid = true
        for (key, value) in f.entries {
            let keyPath = path.key(key)
            guard HTTPToken.isValid(key), !reservedHeaders.contains(key.lowercased()) else {
                w.issue(
                    keyPath,
                    HTTPToken.isValid(key)
                        ? "header '\(key)' is managed by the gateway" : "'\(key)' is not a header name")
                valid = false
                continue
            }
            guard let secret = secret(value, at: keyPath, w) else {
                valid = false
                continue
            }
            headers.append((key, secret))
        }
        return valid ? headers : nil
    }

    /// Where a token is in the JSON answer: keys separated by `.` (`data.jwt.access`).
    static func dottedPath(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> String? {
        guard let text = w.string(node, at: path) else { return nil }
        guard !text.split(separator: ".", omittingEmptySubsequences: false).contains(where: \.isEmpty) else {
            w.issue(path, "'\(text)' is not a dotted path of keys (such as data.jwt.access)")
            return nil
        }
        return text
    }

    /// `format:`: a header value with `{token}` where the token goes.
    static func tokenFormat(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> String? {
        guard let text = w.scalar(node, at: path) else { return nil }
        guard text.value.contains("{token}") else {
            w.issue(path, "\(text.shown) must contain {token}, where the token goes (such as 'Bearer {token}')")
            return nil
        }
        guard HTTPToken.isValidFieldValue(text.value) else {
            w.issue(path, "contains characters a header value cannot have (a line break or another control character)")
            return nil
        }
        return text.value
    }

    static func backoffSettings(
        _ node: Node, at path: ConfigPath, _ w: ConfigWalker
    ) -> (initial: TimeAmount?, max: TimeAmount?)? {
        guard let f = w.mapping(node, at: path, allowed: ["initial", "max"]) else { return nil }
        return (f.value("initial") { w.duration($0, at: $1) }, f.value("max") { w.duration($0, at: $1) })
    }

    static func circuitSettings(
        _ node: Node, at path: ConfigPath, _ w: ConfigWalker
    ) -> (failures: Int?, openFor: TimeAmount?)? {
        guard let f = w.mapping(node, at: path, allowed: ["failures", "open_for"]) else { return nil }
        return (
            f.value("failures") { w.integer($0, at: $1, in: 1...1000) },
            f.value("open_for") { w.duration($0, at: $1) }
        )
    }

    /// `true` or `false` (YAML's other spellings, `yes`/`on`..., are refused: they surprise people).
    static func boolean(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> Bool? {
        guard let text = w.scalar(node, at: path) else { return nil }
        switch text.value.lowercased() {
        case "true": return true
        case "false": return false
        default:
            w.issue(path, "expected true or false, got \(text.shown)")
            return nil
        }
    }
}
