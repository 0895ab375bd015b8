import Foundation
import Logging
import NIOCore
import Testing

@testable import CredGate

// MARK: - Helpers

/// Every secret in these tests contains this marker, so one `contains` proves a message leaked none of them.
private let marker = "SENTINEL"
private let apiKey = "sk-\(marker)-live-9f8e7d"
private let baseEnv = ["ASSURED_API_KEY": apiKey]

private let upstreamsYAML = """
    upstreams:
      assured:
        url: ${ASSURED_BASE_URL:-https://demo-backend.withassured.com}
    """

private let credentialsYAML = """
    credentials:
      assured_key:
        kind: api_key
        header: x-api-key
        value: ${ASSURED_API_KEY}
    """

private let routesYAML = """
    routes:
      - name: assured-api
        path: /api/**
        upstream: assured
        credentials: [assured_key]
    """

/// A valid configuration with one section replaced.
private func config(
    listen: String = "", upstreams: String = upstreamsYAML, credentials: String = credentialsYAML,
    routes: String = routesYAML
) -> String {
    [listen, upstreams, credentials, routes].joined(separator: "\n")
}

/// A file system of `files` only.
private func reader(_ files: [String: String]) -> (String) throws -> String {
    { path in
        guard let content = files[path] else { throw FileReadFailure(reason: "no such file") }
        return content
    }
}

private func issues(_ yaml: String, _ env: [String: String] = baseEnv, files: [String: String] = [:]) -> [ConfigIssue] {
    do {
        _ = try ConfigLoader.parse(yaml: yaml, environment: env, readFile: reader(files))
        return []
    } catch {
        return error.issues
    }
}

private func parsed(
    _ yaml: String, _ env: [String: String] = baseEnv, files: [String: String] = [:]
) throws -> GatewayConfig {
    try ConfigLoader.parse(yaml: yaml, environment: env, readFile: reader(files))
}

/// The Assured session as issue 3 describes it: every key set.
private let sessionYAML =
    credentialsYAML + "\n" + """
          assured_session:
            kind: jwt_session
            upstream: assured
            login:
              method: POST
              path: /api/v1/users/login/
              body: '{"email": "${ASSURED_USER}", "password": "${ASSURED_PASS}", "remember": true}'
              headers: {x-api-key: "${ASSURED_API_KEY}"}
              access_token: data.jwt.access
              refresh_token: data.jwt.refresh
            refresh:
              path: /api/v1/users/token/refresh/
              body: '{"refresh": "{refresh_token}"}'
              access_token: access
              refresh_token: refresh
              send_access_token: true
            header: Authorization
            format: "Bearer {token}"
            default_lifetime: 1h
            refresh_margin: 60s
            backoff: {initial: 1s, max: 5m}
            circuit_breaker: {failures: 5, open_for: 5m}
            placeholder_login: true
        """

private let sessionEnv = baseEnv.merging(["ASSURED_USER": "user@example.com", "ASSURED_PASS": "pw-\(marker)"]) { $1 }

/// `sessionYAML` with one piece of text replaced (which must be there).
private func session(replacing old: String, with new: String) -> String {
    precondition(sessionYAML.contains(old), "not in sessionYAML: \(old)")
    return sessionYAML.replacingOccurrences(of: old, with: new)
}

/// One class of error: the configuration, and the issue expected at `path`.
struct BadConfig: Sendable, CustomTestStringConvertible {
    var name: String
    var yaml: String
    var env: [String: String] = baseEnv
    var files: [String: String] = [:]
    var path: String
    /// The whole message when `exact`, else a part of it.
    var message: String
    var exact = true

    var testDescription: String { name }
}

private let badConfigs: [BadConfig] = [
    // Structure
    BadConfig(
        name: "not YAML", yaml: "routes: [a, b\nupstreams: {}\n", path: "line 2, column 10",
        message: "not valid YAML: while parsing a flow sequence (line 1), did not find expected ',' or ']'"),
    BadConfig(
        name: "empty file", yaml: "# nothing\n", path: "(file)",
        message: "the file is empty: it needs 'upstreams' and 'routes'"),
    BadConfig(
        name: "document not a mapping", yaml: "- a\n- b\n", path: "(file)",
        message: "expected a mapping (key: value lines), got a list"),
    BadConfig(
        name: "unknown top-level key", yaml: config() + "\nlistenn: {}\n", path: "listenn",
        message:
            "unknown key 'listenn' (expected one of: include, listen, upstreams, credentials, routes, presign_cache, spool, endpoints, log, shutdown, admin, reload)"
    ),
    BadConfig(
        name: "shutdown grace of zero", yaml: config() + "\nshutdown: {grace: 0s}\n", path: "shutdown.grace",
        message: "must be greater than 0"),
    BadConfig(
        name: "shutdown delay not a duration", yaml: config() + "\nshutdown: {delay: soon}\n", path: "shutdown.delay",
        message: "expected a duration (\(Quantity.durationHint)), got 'soon'"),
    BadConfig(
        name: "unknown shutdown key", yaml: config() + "\nshutdown: {graze: 5s}\n", path: "shutdown.graze",
        message: "unknown key 'graze' (expected one of: delay, grace)"),
    BadConfig(
        name: "unknown route key",
        yaml: config(
            routes: """
                routes:
                  - name: a
                    pathh: /api/**
                    path: /api/**
                    upstream: assured
                """), path: "routes[0].pathh",
        message:
            "unknown key 'pathh' (expected one of: name, methods, path, upstream, credentials, max_body_bytes, replay_max_body_bytes, transforms, forward_cookies, raw_path, idle_timeout, retry)"
    ),
    BadConfig(
        name: "unknown transform",
        yaml: config(
            routes: """
                routes:
                  - name: a
                    path: /api/**
                    upstream: assured
                    transforms: [ssn_encrypt]
                """), path: "routes[0].transforms[0]",
        message:
            "unknown transform 'ssn_encrypt' (expected one of: ssn_encryption, upload_validation, presign_cache, rewrite_links)"
    ),
    BadConfig(
        name: "missing required key",
        yaml: config(
            routes: """
                routes:
                  - name: a
                    upstream: assured
                """), path: "routes[0]", message: "missing required key 'path'"),
    BadConfig(
        name: "missing upstreams", yaml: config(upstreams: ""), path: "(file)",
        message: "missing required key 'upstreams'"),
    BadConfig(
        name: "missing url", yaml: config(upstreams: "upstreams:\n  assured:\n    connect_timeout: 5s"),
        path: "upstreams.assured", message: "missing required key 'url'"),
    BadConfig(
        name: "key without value", yaml: config(upstreams: "upstreams:\n  assured:\n    url:"),
        path: "upstreams.assured.url", message: "has no value"),
    BadConfig(
        name: "upstream without definition", yaml: config(upstreams: "upstreams:\n  assured:"),
        path: "upstreams.assured", message: "expected a mapping (key: value lines), got nothing"),
    BadConfig(
        name: "wrong type: list for mapping", yaml: config(listen: "listen: [1, 2]"), path: "listen",
        message: "expected a mapping (key: value lines), got a list"),
    BadConfig(
        name: "wrong type: mapping for list", yaml: config(routes: "routes:\n  name: a"), path: "routes",
        message: "expected a list, got a mapping"),
    BadConfig(
        name: "wrong type: mapping for value", yaml: config(listen: "listen:\n  host: {a: b}"),
        path: "listen.host", message: "expected a single value, got a mapping"),
    BadConfig(
        name: "no routes", yaml: config(routes: "routes: []"), path: "routes",
        message: "at least one route is required"),

    // Variables
    BadConfig(
        name: "unset variable", yaml: config(), env: [:], path: "credentials.assured_key.value",
        message: "environment variable ASSURED_API_KEY is not set (set it, or ASSURED_API_KEY_FILE)"),
    BadConfig(
        name: "unreadable _FILE", yaml: config(), env: ["ASSURED_API_KEY_FILE": "/run/secrets/missing"],
        path: "credentials.assured_key.value",
        message: "cannot read ASSURED_API_KEY_FILE '/run/secrets/missing': no such file"),
    BadConfig(
        name: "unterminated reference", yaml: config(listen: "listen:\n  host: ${HOST"), path: "listen.host",
        message: "unterminated '${' (write '$$' for a literal '$')"),
    BadConfig(
        name: "bad variable name", yaml: config(listen: "listen:\n  host: ${1HOST}"), path: "listen.host",
        message: "must hold a variable name", exact: false),

    // Listen
    BadConfig(
        name: "port out of range", yaml: config(listen: "listen:\n  port: 70000"), path: "listen.port",
        message: "70000 is out of range: must be between 0 and 65535"),
    BadConfig(
        name: "port not a number, from the environment",
        yaml: config(listen: "listen:\n  port: ${PORT}"), env: baseEnv.merging(["PORT": "\(marker)-80"]) { $1 },
        path: "listen.port", message: "expected an integer, got the expansion of '${PORT}'"),
    BadConfig(
        name: "bad duration", yaml: config(listen: "listen:\n  idle_timeout: 5 sec"),
        path: "listen.idle_timeout", message: "expected a duration (\(Quantity.durationHint)), got '5 sec'"),
    BadConfig(
        name: "zero duration", yaml: config(listen: "listen:\n  idle_timeout: 0s"),
        path: "listen.idle_timeout", message: "must be greater than 0"),
    BadConfig(
        name: "bad size", yaml: config(listen: "listen:\n  max_header_bytes: 32XB"),
        path: "listen.max_header_bytes", message: "expected a size (\(Quantity.sizeHint)), got '32XB'"),
    BadConfig(
        name: "negative count", yaml: config(listen: "listen:\n  max_connections: -1"),
        path: "listen.max_connections", message: "-1 is out of range: must be at least 1"),

    // Upstreams
    BadConfig(
        name: "bad scheme", yaml: config(),
        env: baseEnv.merging(["ASSURED_BASE_URL": "ftp://\(marker).example"]) { $1 },
        path: "upstreams.assured.url",
        message: "the expansion of '${ASSURED_BASE_URL:-https://demo-backend.withassured.com}' is not a usable "
            + "upstream URL: the scheme must be http or https"),
    BadConfig(
        name: "URL without host", yaml: config(upstreams: "upstreams:\n  assured:\n    url: https:///api"),
        path: "upstreams.assured.url", message: "'https:///api' is not a usable upstream URL: a host is required"),
    BadConfig(
        name: "URL with query", yaml: config(upstreams: "upstreams:\n  assured:\n    url: https://a.example/?x=1"),
        path: "upstreams.assured.url", message: "a query ('?') or fragment ('#') is not allowed", exact: false),
    BadConfig(
        name: "URL with a password",
        yaml: config(upstreams: "upstreams:\n  assured:\n    url: https://u:\(marker)@a.example"),
        path: "upstreams.assured.url",
        message: "not a usable upstream URL: user info ('user:password@') is not allowed: put secrets in a credential"),
    BadConfig(
        name: "URL port", yaml: config(upstreams: "upstreams:\n  assured:\n    url: http://a.example:0"),
        path: "upstreams.assured.url", message: "the port must be between 1 and 65535", exact: false),
    BadConfig(
        name: "bad upstream name", yaml: config(upstreams: "upstreams:\n  my upstream:\n    url: https://a.example"),
        path: "upstreams['my upstream']", message: "bad name 'my upstream' (use letters, digits, '_', '-' and '.')"),
    BadConfig(
        name: "CA file on http",
        yaml: config(upstreams: "upstreams:\n  assured:\n    url: http://a.example\n    ca_file: /ca.pem"),
        files: ["/ca.pem": "-----BEGIN CERTIFICATE-----"],
        path: "upstreams.assured.ca_file", message: "a CA file applies only to an https upstream"),
    BadConfig(
        name: "CA file missing",
        yaml: config(upstreams: "upstreams:\n  assured:\n    url: https://a.example\n    ca_file: /ca.pem"),
        path: "upstreams.assured.ca_file", message: "cannot read CA file '/ca.pem': no such file"),
    BadConfig(
        name: "duplicate upstream name (YAML duplicate key)",
        yaml: config(
            upstreams: "upstreams:\n  assured:\n    url: https://a.example\n  assured:\n    url: https://b.example"),
        path: "line 3, column 3",
        message:
            "duplicate key 'assured' in one mapping (a key, or an upstream or credential name, may appear only once)"),
    BadConfig(
        // Keys are compared by their text only (Resolver.basic): quoting does not make another key of `1`.
        name: "duplicate upstream name, once quoted (YAML duplicate key)",
        yaml: config(upstreams: "upstreams:\n  '1':\n    url: https://a.example\n  1:\n    url: https://b.example"),
        path: "line 3, column 3", message: "duplicate key '1'", exact: false),

    // Credentials
    BadConfig(
        name: "unknown credential kind",
        yaml: config(credentials: "credentials:\n  assured_key:\n    kind: apikey\n    value: x"),
        path: "credentials.assured_key.kind",
        message: "unknown credential kind 'apikey' (expected one of: api_key, jwt_session, aws_sigv4)"),
    BadConfig(
        name: "unknown credential key",
        yaml: config(credentials: credentialsYAML + "\n    prefix: Bearer"),
        path: "credentials.assured_key.prefix",
        message: "unknown key 'prefix' (expected one of: kind, header, value, probe)"),
    BadConfig(
        name: "empty header name",
        yaml: config(credentials: "credentials:\n  assured_key:\n    kind: api_key\n    header: ''\n    value: v"),
        path: "credentials.assured_key.header", message: "'' is not a header name: empty"),
    BadConfig(
        name: "header name not a token",
        yaml: config(
            credentials: "credentials:\n  assured_key:\n    kind: api_key\n    header: 'x api key'\n    value: v"),
        path: "credentials.assured_key.header",
        message: "'x api key' is not a header name: not an HTTP token (letters, digits and !#$%&'*+-.^_`|~)"),
    BadConfig(
        name: "reserved header",
        yaml: config(
            credentials: "credentials:\n  assured_key:\n    kind: api_key\n    header: Content-Length\n    value: v"),
        path: "credentials.assured_key.header",
        message: "header 'Content-Length' cannot carry a credential: the gateway manages it"),
    BadConfig(
        name: "empty secret", yaml: config(), env: ["ASSURED_API_KEY": ""],
        path: "credentials.assured_key.value", message: "is empty"),
    BadConfig(
        name: "secret with a line break", yaml: config(), env: ["ASSURED_API_KEY": "\(marker)\r\nx-evil: 1"],
        path: "credentials.assured_key.value",
        message: "contains characters a header value cannot have (a line break or another control character)"),
    BadConfig(
        name: "literal secret with a line break",
        yaml: config(
            credentials: "credentials:\n  k:\n    kind: api_key\n    header: x-api-key\n    value: \"\(marker)\\nx\""),
        path: "credentials.k.value",
        message: "contains characters a header value cannot have (a line break or another control character)"),
    BadConfig(
        name: "duplicate credential name (YAML duplicate key)",
        yaml: config(
            credentials: credentialsYAML + "\n  assured_key:\n    kind: api_key\n    header: x\n    value: \(marker)"),
        path: "line 6, column 3", message: "duplicate key 'assured_key'", exact: false),

    // Credentials: jwt_session
    BadConfig(
        name: "session: unknown upstream",
        yaml: config(credentials: session(replacing: "upstream: assured", with: "upstream: assurd")),
        env: sessionEnv, path: "credentials.assured_session.upstream", message: "unknown upstream 'assurd'"),
    BadConfig(
        name: "session: missing login",
        yaml: config(
            credentials: """
                credentials:
                  assured_session:
                    kind: jwt_session
                    upstream: assured
                """, routes: "routes:\n  - {name: a, path: /a, upstream: assured}"), env: sessionEnv,
        path: "credentials.assured_session", message: "missing required key 'login'"),
    BadConfig(
        name: "session: unknown key",
        yaml: config(credentials: session(replacing: "header: Authorization", with: "headr: Authorization")),
        env: sessionEnv, path: "credentials.assured_session.headr",
        message:
            "unknown key 'headr' (expected one of: kind, upstream, login, refresh, header, format, default_lifetime, "
            + "refresh_margin, backoff, circuit_breaker, placeholder_login, required_for_ready)"),
    BadConfig(
        name: "session: unknown login key",
        yaml: config(
            credentials: session(replacing: "access_token: data.jwt.access", with: "acces_token: data.jwt.access")),
        env: sessionEnv, path: "credentials.assured_session.login.acces_token",
        message: "unknown key 'acces_token' (expected one of: method, path, body, headers, access_token, refresh_token)"
    ),
    BadConfig(
        name: "session: password breaks the JSON body", yaml: config(credentials: sessionYAML),
        env: sessionEnv.merging(["ASSURED_PASS": "\(marker)\"x"]) { $1 },
        path: "credentials.assured_session.login.body",
        message:
            "is not valid JSON after expansion (if it is valid as written, a variable's value may hold a '\"' or '\\' that needs escaping)"
    ),
    BadConfig(
        name: "session: literal body not JSON",
        yaml: config(
            credentials: session(replacing: "body: '{\"email\"", with: "body: '{\"\(marker)\": 1, \"email\" ")
                .replacingOccurrences(of: "\"remember\": true}'", with: "\"remember\": true'")),
        env: sessionEnv, path: "credentials.assured_session.login.body", message: "is not valid JSON after expansion",
        exact: false),
    BadConfig(
        name: "session: unset password", yaml: config(credentials: sessionYAML),
        env: baseEnv.merging(["ASSURED_USER": "user-\(marker)@example.com"]) { $1 },
        path: "credentials.assured_session.login.body",
        message: "environment variable ASSURED_PASS is not set (set it, or ASSURED_PASS_FILE)"),
    BadConfig(
        name: "session: refresh body not JSON",
        yaml: config(credentials: session(replacing: #"'{"refresh": "{refresh_token}"}'"#, with: "'{refresh_token}'")),
        env: sessionEnv, path: "credentials.assured_session.refresh.body", message: "is not valid JSON after expansion"),
    BadConfig(
        name: "session: format without {token}",
        yaml: config(credentials: session(replacing: "format: \"Bearer {token}\"", with: "format: Bearer")),
        env: sessionEnv, path: "credentials.assured_session.format",
        message: "'Bearer' must contain {token}, where the token goes (such as 'Bearer {token}')"),
    BadConfig(
        name: "session: refresh_token never obtained",
        yaml: config(credentials: session(replacing: "refresh_token: data.jwt.refresh", with: "")),
        env: sessionEnv, path: "credentials.assured_session.refresh.body",
        message: "uses {refresh_token}, but login.refresh_token does not say where the login answer holds one"),
    BadConfig(
        name: "session: bad dotted path",
        yaml: config(credentials: session(replacing: "data.jwt.access", with: "data..access")),
        env: sessionEnv, path: "credentials.assured_session.login.access_token",
        message: "'data..access' is not a dotted path of keys (such as data.jwt.access)"),
    BadConfig(
        name: "session: relative path",
        yaml: config(credentials: session(replacing: "path: /api/v1/users/login/", with: "path: api/v1/users/login/")),
        env: sessionEnv, path: "credentials.assured_session.login.path",
        message: "'api/v1/users/login/' must start with '/'"),
    BadConfig(
        name: "session: path with a space",
        yaml: config(
            credentials: session(replacing: "path: /api/v1/users/login/", with: "path: /api/v1/users/log in/")),
        env: sessionEnv, path: "credentials.assured_session.login.path", message: "is not a request path", exact: false),
    BadConfig(
        name: "session: bad method",
        yaml: config(credentials: session(replacing: "method: POST", with: "method: 'PO ST'")),
        env: sessionEnv, path: "credentials.assured_session.login.method",
        message: "'PO ST' is not an HTTP method (a token such as GET or POST)"),
    BadConfig(
        name: "session: not a boolean",
        yaml: config(credentials: session(replacing: "placeholder_login: true", with: "placeholder_login: yes")),
        env: sessionEnv, path: "credentials.assured_session.placeholder_login",
        message: "expected true or false, got 'yes'"),
    BadConfig(
        name: "session: no circuit", yaml: config(credentials: session(replacing: "failures: 5", with: "failures: 0")),
        env: sessionEnv, path: "credentials.assured_session.circuit_breaker.failures",
        message: "0 is out of range: must be between 1 and 1000"),
    BadConfig(
        name: "session: backoff max below initial",
        yaml: config(credentials: session(replacing: "max: 5m", with: "max: 500ms")),
        env: sessionEnv, path: "credentials.assured_session.backoff.max",
        message: "backoff.max must be at least backoff.initial (default initial 1s, max 5m)"),
    BadConfig(
        name: "session: unknown backoff key",
        yaml: config(credentials: session(replacing: "initial: 1s", with: "first: 1s")),
        env: sessionEnv, path: "credentials.assured_session.backoff.first",
        message: "unknown key 'first' (expected one of: initial, max)"),
    BadConfig(
        name: "session: zero lifetime",
        yaml: config(credentials: session(replacing: "default_lifetime: 1h", with: "default_lifetime: 0s")),
        env: sessionEnv, path: "credentials.assured_session.default_lifetime", message: "must be greater than 0"),
    BadConfig(
        name: "session: reserved login header",
        yaml: config(credentials: session(replacing: "x-api-key: ", with: "Content-Length: ")),
        env: sessionEnv, path: "credentials.assured_session.login.headers.Content-Length",
        message: "header 'Content-Length' is managed by the gateway"),
    BadConfig(
        name: "session: login header with a line break", yaml: config(credentials: sessionYAML),
        env: sessionEnv.merging(["ASSURED_API_KEY": "\(marker)\r\nx: 1"]) { $1 },
        path: "credentials.assured_session.login.headers.x-api-key",
        message: "contains characters a header value cannot have (a line break or another control character)"),
    BadConfig(
        name: "session and key both write Authorization",
        yaml: config(
            credentials: sessionYAML + "\n  other:\n    kind: api_key\n    header: authorization\n    value: \(marker)",
            routes: "routes:\n  - {name: a, path: /a, upstream: assured, credentials: [assured_session, other]}"),
        env: sessionEnv, path: "routes[0].credentials[1]",
        message: "credentials 'assured_session' and 'other' both write header 'authorization'"),

    // Routes
    BadConfig(
        name: "duplicate route name",
        yaml: config(
            routes: """
                routes:
                  - {name: a, path: /a, upstream: assured}
                  - {name: a, path: /b, upstream: assured}
                """), path: "routes[1].name", message: "duplicate route name 'a' (first used by routes[0])"),
    BadConfig(
        name: "unknown upstream", yaml: config(routes: "routes:\n  - {name: a, path: /a, upstream: assurd}"),
        path: "routes[0].upstream", message: "unknown upstream 'assurd'"),
    BadConfig(
        name: "unknown credential",
        yaml: config(
            routes: """
                routes:
                  - {name: a, path: /a, upstream: assured, credentials: [assured_key]}
                  - {name: b, path: /b, upstream: assured}
                  - {name: c, path: /c, upstream: assured}
                  - {name: d, path: /d, upstream: assured, credentials: [assured_kee]}
                """), path: "routes[3].credentials[0]", message: "unknown credential 'assured_kee'"),
    BadConfig(
        name: "credential listed twice",
        yaml: config(
            routes: "routes:\n  - {name: a, path: /a, upstream: assured, credentials: [assured_key, assured_key]}"),
        path: "routes[0].credentials[1]", message: "credential 'assured_key' is listed twice"),
    BadConfig(
        name: "two credentials write one header",
        yaml: config(
            credentials: credentialsYAML + "\n  other:\n    kind: api_key\n    header: X-API-Key\n    value: \(marker)",
            routes: "routes:\n  - {name: a, path: /a, upstream: assured, credentials: [assured_key, other]}"),
        path: "routes[0].credentials[1]", message: "credentials 'assured_key' and 'other' both write header 'x-api-key'"
    ),
    BadConfig(
        name: "bad method",
        yaml: config(routes: "routes:\n  - {name: a, methods: [GET, 'GE T'], path: /a, upstream: assured}"),
        path: "routes[0].methods[1]", message: "'GE T' is not an HTTP method (a token such as GET or POST)"),
    BadConfig(
        name: "empty method list",
        yaml: config(routes: "routes:\n  - {name: a, methods: [], path: /a, upstream: assured}"),
        path: "routes[0].methods",
        message: "an empty list takes no request: list methods, or write \"*\" or omit the key for every method"),
    BadConfig(
        name: "star with methods",
        yaml: config(routes: "routes:\n  - {name: a, methods: ['*', GET], path: /a, upstream: assured}"),
        path: "routes[0].methods", message: "\"*\" (every method) cannot be listed with other methods"),
    BadConfig(
        name: "bad path pattern", yaml: config(routes: "routes:\n  - {name: a, path: api/**, upstream: assured}"),
        path: "routes[0].path", message: "bad path pattern 'api/**': a path pattern must start with '/'"),
    BadConfig(
        name: "wildcard not last", yaml: config(routes: "routes:\n  - {name: a, path: /**/x, upstream: assured}"),
        path: "routes[0].path", message: "bad path pattern '/**/x': '**' may only be the last segment"),
    BadConfig(
        name: "bad route size",
        yaml: config(routes: "routes:\n  - {name: a, path: /a, upstream: assured, max_body_bytes: 1TiB}"),
        path: "routes[0].max_body_bytes", message: "expected a size", exact: false),
    BadConfig(
        name: "shadowed route",
        yaml: config(
            routes: """
                routes:
                  - {name: y, path: /api/**, upstream: assured}
                  - {name: z, methods: [GET], path: /other, upstream: assured}
                  - {name: x, methods: [GET, POST], path: '/api/v1/{id}/', upstream: assured}
                """), path: "routes[2]",
        message: "route 'x' can never match: every request it takes is taken first by routes[0] ('y')"),
    BadConfig(
        name: "shadowed by a route with more methods",
        yaml: config(
            routes: """
                routes:
                  - {name: y, methods: [GET, POST], path: '/a/{id}', upstream: assured}
                  - {name: x, methods: [get], path: /a/b, upstream: assured}
                """), path: "routes[1]",
        message: "route 'x' can never match: every request it takes is taken first by routes[0] ('y')"),
    // Checks that need a route's credentials and transforms together: once only `serve` made them (issue 9).
    BadConfig(
        name: "ssn_encryption without a session",
        yaml: config(
            routes: """
                routes:
                  - name: a
                    path: /api/**
                    upstream: assured
                    credentials: [assured_key]
                    transforms: [upload_validation, ssn_encryption]
                """), path: "routes[0].transforms[1]",
        message: "ssn_encryption needs a jwt_session credential on the route: the SSN is encrypted with its token"),
    BadConfig(
        name: "placeholder login on a path that is not plain",
        yaml: config(
            credentials: session(replacing: "path: /api/v1/users/login/", with: "path: /api/v1/users/login*/")),
        env: sessionEnv, path: "credentials.assured_session.placeholder_login",
        message: "the login path '/api/v1/users/login*/' cannot be answered locally: it is not a plain path"),
]

// MARK: - Errors

@Suite struct ConfigLoaderErrorTests {
    @Test(arguments: badConfigs)
    func reportsTheIssueAtItsPath(_ bad: BadConfig) {
        let found = issues(bad.yaml, bad.env, files: bad.files)
        let atPath = found.filter { $0.path == bad.path }
        #expect(!atPath.isEmpty, "no issue at \(bad.path); got: \(found)")
        if bad.exact {
            #expect(atPath.contains { $0.message == bad.message }, "got: \(found)")
        } else {
            #expect(atPath.contains { $0.message.contains(bad.message) }, "got: \(found)")
        }
    }

    /// No message, for any class of error, quotes a secret or an environment variable's value.
    @Test(arguments: badConfigs)
    func issuesNeverContainSecrets(_ bad: BadConfig) {
        let found = issues(bad.yaml, bad.env, files: bad.files)
        #expect(!found.isEmpty)
        let secrets = bad.env.filter { !$0.key.hasSuffix("_FILE") && !$0.value.isEmpty }.map(\.value)
        for issue in found {
            #expect(!issue.description.contains(marker), "\(issue)")
            for secret in secrets { #expect(!issue.description.contains(secret), "\(issue)") }
        }
        let error = ConfigError(issues: found)
        #expect(!error.description.contains(marker))
    }

    /// `check-config` and `serve` agree: every configuration the loader accepts (the shipped profiles, the
    /// examples, the test suite's own) builds a running gateway's routes without an error; and what only the
    /// runtime used to refuse, the loader refuses with its YAML path (the BadConfig cases above).
    @Test func whatCheckConfigAcceptsServeStarts() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        var sources: [(String, String, [String: String])] = [
            ("test config", config(), baseEnv),
            ("test session config", config(credentials: sessionYAML), sessionEnv),
        ]
        let shipped =
            ["Config/credgate.yaml", "Config/wriftai.yaml"]
            + ((try? FileManager.default.contentsOfDirectory(
                atPath: root.appendingPathComponent("Config/examples").path)) ?? [])
            .filter { $0.hasSuffix(".yaml") }.map { "Config/examples/\($0)" }
        // Shipped files are loaded as files (an example may include others).
        var files: [String: String] = [:]
        for file in shipped {
            files[file] = root.appendingPathComponent(file).path
            sources.append(
                (
                    file, "",
                    [
                        "ASSURED_API_KEY": "k", "ASSURED_USER": "u@example.com", "ASSURED_PASS": "p",
                        "EXAMPLE_TOKEN": "t",
                        "WRIFTAI_ACCESS_TOKEN": "w",
                    ]
                ))
        }
        #expect(sources.count >= 5)
        for (name, yaml, env) in sources {
            let loaded: GatewayConfig
            do {
                if let path = files[name] {
                    loaded = try ConfigLoader.load(paths: [path], environment: env)
                } else {
                    loaded = try ConfigLoader.parse(yaml: yaml, environment: env, readFile: reader([:]))
                }
            } catch {
                Issue.record("\(name): the loader refused it: \(error)")
                continue
            }
            do {
                _ = try GatewayRuntime(
                    config: loaded, logger: Logger(label: "test"), sessionTransport: { _ in FakePlatform() })
            } catch {
                Issue.record("\(name): check-config accepts it but serve would refuse it: \(error)")
            }
        }
    }

    @Test func collectsEveryIssueInOneRun() {
        let yaml = """
            listen:
              port: 99999
              idle_timeout: soon
            upstreams:
              assured:
                url: gopher://x
            credentials:
              assured_key:
                kind: api_key
                header: x-api-key
                value: ${ASSURED_API_KEY}
            routes:
              - name: a
                pathh: /a
                upstream: nowhere
                credentials: [assured_kee]
            """
        let found = issues(yaml, [:])
        #expect(
            found.map(\.path) == [
                "listen.port", "listen.idle_timeout", "upstreams.assured.url", "credentials.assured_key.value",
                "routes[0].pathh", "routes[0]", "routes[0].upstream", "routes[0].credentials[0]",
            ])
        #expect(found.last?.description == "routes[0].credentials[0]: unknown credential 'assured_kee'")
        #expect(
            found[3].description
                == "credentials.assured_key.value: environment variable ASSURED_API_KEY is not set (set it, or ASSURED_API_KEY_FILE)"
        )
    }

    @Test func missingFile() {
        #expect(throws: ConfigError.self) {
            try ConfigLoader.load(path: "/nonexistent/credgate.yaml", environment: [:])
        }
        do {
            _ = try ConfigLoader.load(path: "/nonexistent/credgate.yaml", environment: [:])
        } catch {
            #expect(
                error.issues == [
                    ConfigIssue(path: "(file)", message: "cannot read '/nonexistent/credgate.yaml': no such file")
                ])
        }
    }

    @Test func errorDescriptionIsOneIssuePerLine() {
        let error = ConfigError(issues: [
            ConfigIssue(path: "routes[3].credentials[0]", message: "unknown credential 'assured_kee'"),
            ConfigIssue(path: "(file)", message: "x"),
        ])
        #expect(error.description == "routes[3].credentials[0]: unknown credential 'assured_kee'\n(file): x")
    }
}

// MARK: - Values

@Suite struct ConfigLoaderValueTests {
    @Test func fullConfiguration() throws {
        let yaml = """
            listen:
              host: 0.0.0.0
              port: 0
              max_connections: 10
              max_header_bytes: 16KiB
              idle_timeout: 2m
              threads: 4
              max_connections_per_peer: 7
              header_timeout: 3s
              trust_forwarded_headers: true
              fast_path: false
            upstreams:
              assured:
                url: HTTPS://Demo-Backend.withassured.com/base/
                connect_timeout: 250ms
                response_timeout: 1h
                idle_timeout: 90
                ca_file: /etc/ca.pem
                max_idle_connections: 0
                pool_idle_timeout: 10s
              local:
                url: http://[::1]:9000
            credentials:
              assured_key:
                kind: api_key
                header: x-api-key
                value: ${ASSURED_API_KEY}
            routes:
              - name: login
                methods: [post]
                path: /api/v1/users/login/
                upstream: assured
                max_body_bytes: 10KiB
              - name: assured-api
                methods: "*"
                path: /api/**
                upstream: assured
                credentials: [assured_key]
                max_body_bytes: 1048576
                forward_cookies: true
              - name: local
                raw_path: true
                path: /local/{id}
                upstream: local
            """
        let config = try parsed(yaml, files: ["/etc/ca.pem": "-----BEGIN CERTIFICATE-----\n..."])
        #expect(config.listen.host == "0.0.0.0")
        #expect(config.listen.port == 0)
        #expect(config.listen.maxConnections == 10)
        #expect(config.listen.maxHeaderBytes == 16 * 1024)
        #expect(config.listen.idleTimeout == .minutes(2))
        #expect(config.listen.threads == 4)
        #expect(config.listen.maxConnectionsPerPeer == 7)
        #expect(config.listen.headerTimeout == .seconds(3))
        #expect(config.listen.trustForwardedHeaders)
        #expect(!config.listen.fastPath)

        let assured = try #require(config.upstreams["assured"])
        #expect(assured.name == "assured")
        #expect(
            assured.url
                == UpstreamURL(scheme: .https, host: "demo-backend.withassured.com", port: 443, basePath: "/base"))
        #expect(assured.connectTimeout == .milliseconds(250))
        #expect(assured.responseTimeout == .hours(1))
        #expect(assured.idleTimeout == .seconds(90))
        #expect(assured.caFile == "/etc/ca.pem")
        #expect(assured.maxIdleConnections == 0)
        #expect(assured.poolIdleTimeout == .seconds(10))
        #expect(config.upstreams["local"]?.url == UpstreamURL(scheme: .http, host: "::1", port: 9000))
        #expect(config.upstreams["local"]?.url.hostHeader == "[::1]:9000")

        let key = try #require(config.credentials["assured_key"])
        guard case .apiKey(let header, let value) = key.kind else {
            Issue.record("not an API key")
            return
        }
        #expect(header == "x-api-key")
        #expect(value.reveal() == apiKey)
        #expect(!"\(value)".contains(apiKey))

        #expect(config.routes.map(\.name) == ["login", "assured-api", "local"])
        #expect(config.routes[0].methods == ["POST"])
        #expect(config.routes[0].credentials == [])
        #expect(config.routes[0].maxBodyBytes == 10 * 1024)
        #expect(config.routes[1].methods == nil)
        #expect(config.routes[1].path.description == "/api/**")
        #expect(config.routes[1].credentials == ["assured_key"])
        #expect(config.routes[1].maxBodyBytes == 1_048_576)
        #expect(config.routes[2].methods == nil)
        #expect(config.routes[2].maxBodyBytes == 128 * 1024 * 1024)
        #expect(config.routes.map(\.forwardCookies) == [false, true, false])
        #expect(config.routes.map(\.rawPath) == [false, false, true])
    }

    @Test func defaults() throws {
        let config = try parsed(config())
        #expect(config.listen.host == "127.0.0.1")
        #expect(config.listen.port == 8080)
        #expect(config.listen.maxConnections == 1024)
        #expect(config.listen.idleTimeout == .seconds(60))
        #expect(config.listen.maxConnectionsPerPeer == 512)
        #expect(config.listen.headerTimeout == .seconds(10))
        #expect(!config.listen.trustForwardedHeaders)
        #expect(config.listen.fastPath)
        let assured = try #require(config.upstreams["assured"])
        #expect(assured.url.description == "https://demo-backend.withassured.com")
        #expect(assured.connectTimeout == .seconds(5))
        #expect(assured.caFile == nil)
        #expect(config.routes.first?.methods == nil)
        #expect(config.shutdown.delay == .zero)
        #expect(config.shutdown.grace == .seconds(25))
    }

    @Test func shutdownBlock() throws {
        let loaded = try parsed(config() + "\nshutdown:\n  delay: 5s\n  grace: 40s\n")
        #expect(loaded.shutdown.delay == .seconds(5))
        #expect(loaded.shutdown.grace == .seconds(40))
        #expect(try parsed(config() + "\nshutdown: {delay: 0s}\n").shutdown.delay == .zero)
    }

    @Test(arguments: [
        ("5", TimeAmount.seconds(5)), ("250ms", .milliseconds(250)), ("5s", .seconds(5)), ("2m", .minutes(2)),
        ("1h", .hours(1)), ("10 s", .seconds(10)),
    ])
    func durations(_ text: String, _ expected: TimeAmount) {
        #expect(Quantity.duration(text) == .success(expected))
    }

    @Test(arguments: ["", "s", "1.5s", "-1s", "5 sec", "1d", "5S", "99999999999999999999"])
    func badDurations(_ text: String) {
        #expect(throws: Quantity.Problem.self) { try Quantity.duration(text).get() }
    }

    @Test func durationOverflow() {
        #expect(Quantity.duration("9999999999h") == .failure(.tooLarge))
    }

    @Test(
        arguments: [
            ("1024", 1024), ("10KiB", 10 * 1024), ("25MiB", 25 << 20), ("1GiB", 1 << 30), ("1KB", 1000),
            ("2MB", 2_000_000), ("3GB", 3_000_000_000), ("128 MiB", 128 << 20), ("7B", 7),
        ] as [(String, Int64)])
    func sizes(_ text: String, _ expected: Int64) {
        #expect(Quantity.byteSize(text) == .success(expected))
    }

    @Test(arguments: ["", "KiB", "1.5MiB", "-1", "10kib", "1TiB", "10 K"])
    func badSizes(_ text: String) {
        #expect(throws: Quantity.Problem.self) { try Quantity.byteSize(text).get() }
    }

    @Test(arguments: [
        ("http://a.example", UpstreamURL(scheme: .http, host: "a.example", port: 80)),
        ("https://a.example:8443/", UpstreamURL(scheme: .https, host: "a.example", port: 8443)),
        ("https://a.example/v1/api//", UpstreamURL(scheme: .https, host: "a.example", port: 443, basePath: "/v1/api")),
        ("http://127.0.0.1:9000/x", UpstreamURL(scheme: .http, host: "127.0.0.1", port: 9000, basePath: "/x")),
        ("https://[2001:db8::1]", UpstreamURL(scheme: .https, host: "2001:db8::1", port: 443)),
    ])
    func urls(_ text: String, _ expected: UpstreamURL) {
        #expect(UpstreamURL.parse(text) == .success(expected))
    }

    @Test(arguments: [
        ("a.example", UpstreamURL.URLProblem.shape), ("ftp://a.example", .scheme), ("https://", .missingHost),
        ("https://:80", .missingHost), ("https://a.example/#x", .queryOrFragment), ("https://u@a.example", .userInfo),
        ("https://a.example:99999", .port), ("https://a.example:", .port), ("https://a.example:+80", .port),
        ("https://a b", .host), ("https://[::1", .host), ("https://a.example/a b", .path),
    ])
    func badURLs(_ text: String, _ problem: UpstreamURL.URLProblem) {
        #expect(UpstreamURL.parse(text) == .failure(problem))
    }

    @Test func lowerCaseMethodsAreUpperCased() throws {
        let config = try parsed(
            config(routes: "routes:\n  - {name: a, methods: [get, Post], path: /a, upstream: assured}"))
        #expect(config.routes[0].methods == ["GET", "POST"])
    }

    @Test func routesInAnyOrderOfSections() throws {
        let config = try parsed([routesYAML, credentialsYAML, upstreamsYAML].joined(separator: "\n"))
        #expect(config.routes.count == 1)
    }

    /// A route after a narrower one is fine; only a full cover shadows.
    @Test func narrowerEarlierRouteDoesNotShadow() throws {
        let config = try parsed(
            config(
                routes: """
                    routes:
                      - {name: a, methods: [GET], path: /api/**, upstream: assured}
                      - {name: c, path: '/api/{id}', upstream: assured}
                      - {name: d, path: /api, upstream: assured}
                      - {name: b, path: /api/**, upstream: assured}
                    """))
        #expect(config.routes.count == 4)
    }
}

// MARK: - Interpolation

@Suite struct InterpolationTests {
    private func expand(_ text: String, _ env: [String: String], files: [String: String] = [:]) -> Interpolator.Result {
        Interpolator(environment: env, readFile: reader(files)).expand(text)
    }

    @Test func plainTextIsUntouched() {
        let result = expand("no references, a $ sign and $HOME", [:])
        #expect(result.text == "no references, a $ sign and $HOME")
        #expect(!result.usedEnvironment)
        #expect(result.problems.isEmpty)
    }

    @Test func variablesAndDefaults() {
        let env = ["A": "1", "EMPTY": ""]
        #expect(expand("${A}", env).text == "1")
        #expect(expand("x-${A}-${A}-y", env).text == "x-1-1-y")
        #expect(expand("${A:-d}", env).text == "1")
        #expect(expand("${UNSET:-d}", env).text == "d")
        #expect(expand("${UNSET:-}", env).text == "")
        #expect(expand("${UNSET:-http://h:80/p}", env).text == "http://h:80/p")
        #expect(expand("${EMPTY:-d}", env).text == "d", "empty counts as unset with ':-' (shell semantics)")
        #expect(expand("[${EMPTY}]", env).text == "[]", "empty is kept without ':-'")
        #expect(expand("${A}", env).usedEnvironment)
    }

    @Test func dollarDollarIsALiteralDollar() {
        #expect(expand("$${A}", ["A": "1"]).text == "${A}")
        #expect(expand("p$$w$$", [:]).text == "p$w$")
        #expect(expand("$$$${A}", ["A": "1"]).text == "$${A}")
    }

    @Test func unsetVariables() {
        let result = expand("${A}/${B}", [:])
        #expect(
            result.problems == [
                "environment variable A is not set (set it, or A_FILE)",
                "environment variable B is not set (set it, or B_FILE)",
            ])
    }

    @Test func fileVariables() {
        let env = ["KEY_FILE": "/run/secrets/key"]
        let result = expand("${KEY}", env, files: ["/run/secrets/key": "s3cret\n\n"])
        #expect(result.text == "s3cret")
        #expect(result.usedEnvironment)
        #expect(expand("${KEY}", env, files: ["/run/secrets/key": "s3cret\r\n"]).text == "s3cret")
        #expect(expand("${KEY:-d}", env, files: ["/run/secrets/key": "\n"]).text == "d")
        #expect(expand("${KEY}", ["KEY": "direct", "KEY_FILE": "/nope"]).text == "direct", "VAR wins over VAR_FILE")
        #expect(expand("${KEY}", env).problems == ["cannot read KEY_FILE '/run/secrets/key': no such file"])
    }

    /// The real file system, through `load(path:)`, as Docker mounts a secret.
    @Test func fileVariableFromATemporaryFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("credgate-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let secretFile = dir.appendingPathComponent("assured_api_key")
        try "from-a-file\n".write(to: secretFile, atomically: true, encoding: .utf8)
        let configFile = dir.appendingPathComponent("credgate.yaml")
        try config().write(to: configFile, atomically: true, encoding: .utf8)

        let loaded = try ConfigLoader.load(
            path: configFile.path, environment: ["ASSURED_API_KEY_FILE": secretFile.path])
        guard case .apiKey(_, let value) = loaded.credentials["assured_key"]?.kind else {
            Issue.record("no credential")
            return
        }
        #expect(value.reveal() == "from-a-file")

        do {
            _ = try ConfigLoader.load(path: configFile.path, environment: ["ASSURED_API_KEY_FILE": dir.path])
            Issue.record("a directory is not a secret")
        } catch {
            #expect(
                error.issues == [
                    ConfigIssue(
                        path: "credentials.assured_key.value",
                        message: "cannot read ASSURED_API_KEY_FILE '\(dir.path)': it is a directory")
                ])
        }
    }

    @Test func interpolationInEveryScalar() throws {
        let env = baseEnv.merging(["PORT": "9090", "UP": "assured", "ROUTE_PATH": "/v2/**"]) { $1 }
        let config = try parsed(
            config(
                listen: "listen:\n  port: ${PORT}",
                routes: """
                    routes:
                      - {name: r, path: '${ROUTE_PATH}', upstream: '${UP}', max_body_bytes: '${SIZE:-1MiB}'}
                    """), env)
        #expect(config.listen.port == 9090)
        #expect(config.routes[0].path.description == "/v2/**")
        #expect(config.routes[0].upstream == "assured")
        #expect(config.routes[0].maxBodyBytes == 1 << 20)
    }
}

// MARK: - Shipped configurations

@Suite struct ShippedConfigTests {
    /// The repository root, from this file's place in it.
    private static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    private static let assuredProfile = root.appendingPathComponent("Config/credgate.yaml").path

    static let profileEnvironment = [
        "ASSURED_API_KEY": apiKey, "ASSURED_USER": "user@example.com", "ASSURED_PASS": "pw",
    ]

    @Test func assuredProfileParses() throws {
        let config = try ConfigLoader.load(path: Self.assuredProfile, environment: Self.profileEnvironment)
        #expect(config.upstreams["assured"]?.url.description == "https://demo-backend.withassured.com")
        #expect(config.credentials["assured_key"]?.headerNames == ["x-api-key"])
        #expect(config.credentials["assured_session"]?.headerNames == ["authorization"])
        guard case .jwtSession(let session) = config.credentials["assured_session"]?.kind else {
            Issue.record("assured_session is not a jwt_session")
            return
        }
        #expect(session.placeholderLogin)
        #expect(session.login.accessTokenPath == "data.jwt.access")
        // The session routes come first, then everything else under /api/ with the key.
        let byName = Dictionary(uniqueKeysWithValues: config.routes.map { ($0.name, $0) })
        #expect(byName["assured-upload"]?.credentials == ["assured_key", "assured_session"])
        #expect(byName["assured-presign"]?.credentials == ["assured_key", "assured_session"])
        #expect(byName["assured-provider-documents"]?.credentials == ["assured_key", "assured_session"])
        #expect(byName["assured-ssn-encrypted"]?.credentials == ["assured_session"])
        #expect(byName["assured-ssn-encrypted"]?.transforms == [.ssnEncryption])
        let route = try #require(config.routes.last)
        #expect(route.name == "assured-api")
        #expect(route.upstream == "assured")
        #expect(route.credentials == ["assured_key"])
        #expect(route.methods == ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"])
        #expect(route.path.matches("/api/v1/users/logged-in-user-details/"))
        #expect(route.path.matches("/api"))
        #expect(!route.path.matches("/apix"))
    }

    @Test func assuredProfileTakesTheBaseURLFromTheEnvironment() throws {
        let config = try ConfigLoader.load(
            path: Self.assuredProfile,
            environment: Self.profileEnvironment.merging([
                "ASSURED_BASE_URL": "http://127.0.0.1:9999"
            ]) { $1 })
        #expect(config.upstreams["assured"]?.url == UpstreamURL(scheme: .http, host: "127.0.0.1", port: 9999))
    }

    @Test func assuredProfileNeedsTheKey() {
        do {
            _ = try ConfigLoader.load(path: Self.assuredProfile, environment: [:])
            Issue.record("loaded without ASSURED_API_KEY")
        } catch {
            #expect(
                error.issues == [
                    ConfigIssue(
                        path: "credentials.assured_key.value",
                        message: "environment variable ASSURED_API_KEY is not set (set it, or ASSURED_API_KEY_FILE)"),
                    ConfigIssue(
                        path: "credentials.assured_session.login.body",
                        message: "environment variable ASSURED_USER is not set (set it, or ASSURED_USER_FILE)"),
                    ConfigIssue(
                        path: "credentials.assured_session.login.body",
                        message: "environment variable ASSURED_PASS is not set (set it, or ASSURED_PASS_FILE)"),
                ])
        }
    }

    /// The reference's full example stays true.
    @Test func documentedExampleParses() throws {
        let doc = try String(contentsOf: Self.root.appendingPathComponent("docs/configuration.md"), encoding: .utf8)
        let example = try #require(doc.components(separatedBy: "```yaml\n").last?.components(separatedBy: "```").first)
        let config = try parsed(
            example, ["ASSURED_API_KEY": apiKey, "INTERNAL_TOKEN": "t"],
            files: ["/etc/credgate/internal-ca.pem": "-----BEGIN CERTIFICATE-----\n"])
        #expect(config.routes.map(\.name) == ["assured-login", "assured-api", "internal"])
        #expect(
            config.upstreams["internal"]?.url
                == UpstreamURL(scheme: .https, host: "internal.example.com", port: 8443, basePath: "/v2"))
    }

    @Test func minimalExampleParses() throws {
        let path = Self.root.appendingPathComponent("Config/examples/minimal.yaml").path
        let config = try ConfigLoader.load(path: path, environment: ["EXAMPLE_TOKEN": "t"])
        #expect(config.routes.count == 1)
        #expect(config.upstreams.count == 1)
        guard case .apiKey(let header, let value) = config.credentials["example_token"]?.kind else {
            Issue.record("no credential")
            return
        }
        #expect(header == "authorization")
        #expect(value.reveal() == "Bearer t")
    }
}

// MARK: - jwt_session

@Suite struct ConfigLoaderJWTSessionTests {
    @Test func everyKey() throws {
        let config = try parsed(config(credentials: sessionYAML), sessionEnv)
        let credential = try #require(config.credentials["assured_session"])
        #expect(credential.headerNames == ["authorization"])
        guard case .jwtSession(let session) = credential.kind else {
            Issue.record("not a session")
            return
        }
        #expect(session.upstream == "assured")
        #expect(session.login.method == "POST")
        #expect(session.login.path == "/api/v1/users/login/")
        #expect(
            session.login.body.reveal()
                == #"{"email": "user@example.com", "password": "pw-\#(marker)", "remember": true}"#)
        #expect(session.login.headers.map(\.name) == ["x-api-key"])
        #expect(session.login.headers.first?.value.reveal() == apiKey)
        #expect(session.login.accessTokenPath == "data.jwt.access")
        #expect(session.login.refreshTokenPath == "data.jwt.refresh")
        #expect(!session.login.sendAccessToken)
        let refresh = try #require(session.refresh)
        #expect(refresh.method == "POST")
        #expect(refresh.path == "/api/v1/users/token/refresh/")
        #expect(refresh.body.reveal() == #"{"refresh": "{refresh_token}"}"#) // not a ${...}: left for call time
        #expect(refresh.accessTokenPath == "access")
        #expect(refresh.refreshTokenPath == "refresh")
        #expect(refresh.sendAccessToken)
        #expect(session.header == "Authorization")
        #expect(session.format == "Bearer {token}")
        #expect(session.defaultLifetime == .hours(1))
        #expect(session.refreshMargin == .seconds(60))
        #expect(session.backoffInitial == .seconds(1))
        #expect(session.backoffMax == .minutes(5))
        #expect(session.circuitFailures == 5)
        #expect(session.circuitOpenFor == .minutes(5))
        #expect(session.placeholderLogin)
    }

    @Test func defaults() throws {
        let yaml = config(
            credentials: """
                credentials:
                  assured_key: {kind: api_key, header: x-api-key, value: k}
                  s:
                    kind: jwt_session
                    upstream: assured
                    login:
                      path: /login
                      body: '{"user": "u", "password": "${ASSURED_PASS}"}'
                      access_token: token
                """)
        let config = try parsed(yaml, sessionEnv)
        guard case .jwtSession(let session) = config.credentials["s"]?.kind else {
            Issue.record("not a session")
            return
        }
        #expect(session.login.method == "POST")
        #expect(session.login.headers.isEmpty)
        #expect(session.login.refreshTokenPath == nil)
        #expect(session.refresh == nil)
        #expect(session.header == "Authorization")
        #expect(session.format == "Bearer {token}")
        #expect(session.defaultLifetime == .hours(1))
        #expect(session.refreshMargin == nil)
        #expect(session.backoffInitial == .seconds(1))
        #expect(session.backoffMax == .minutes(5))
        #expect(session.circuitFailures == 5)
        #expect(session.circuitOpenFor == .minutes(5))
        #expect(!session.placeholderLogin)
        #expect(config.credentials["s"]?.headerNames == ["authorization"])
    }

    @Test func customHeaderIsLowerCasedInHeaderNames() throws {
        let yaml = config(
            credentials: session(replacing: "header: Authorization", with: "header: X-Session-Token")
                .replacingOccurrences(of: "format: \"Bearer {token}\"", with: "format: \"{token}\""))
        let config = try parsed(yaml, sessionEnv)
        #expect(config.credentials["assured_session"]?.headerNames == ["x-session-token"])
    }

    /// Messages about the body never show it, whatever went wrong.
    @Test func bodyIssuesNeverShowTheBody() {
        let found = issues(
            config(credentials: sessionYAML), sessionEnv.merging(["ASSURED_PASS": "a\"\(marker)"]) { $1 })
        #expect(found.count == 1)
        #expect(!found.description.contains(marker))
        #expect(!found.description.contains("user@example.com"))
    }
}
