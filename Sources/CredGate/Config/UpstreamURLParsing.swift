extension UpstreamURL {
    /// Takes an upstream's base URL apart (`https://host[:port][/base/path]`), by hand so that the rules are
    /// exactly ours: http or https only, a host, no user info, query or fragment; the path, without its trailing
    /// slashes, becomes ``basePath``.
    ///
    /// The problem is a phrase that never quotes the text: the URL may come from the environment.
    static func parse(_ text: String) -> Result<UpstreamURL, URLProblem> {
        guard let separator = text.firstRange(of: "://") else { return .failure(.shape) }
        guard let scheme = Scheme(rawValue: text[..<separator.lowerBound].lowercased()) else {
            return .failure(.scheme)
        }
        let rest = text[separator.upperBound...]
        if rest.contains("?") || rest.contains("#") { return .failure(.queryOrFragment) }
        let authority = rest.prefix { $0 != "/" }
        var path = rest[authority.endIndex...]
        if authority.contains("@") { return .failure(.userInfo) }

        let host: Substring
        let portText: Substring?
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return .failure(.host) }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            guard after.isEmpty || after.hasPrefix(":") else { return .failure(.host) }
            portText = after.isEmpty ? nil : after.dropFirst()
            guard !host.isEmpty,
                host.unicodeScalars.allSatisfy({ $0.properties.isASCIIHexDigit || $0 == ":" || $0 == "." })
            else { return .failure(.host) }
        } else {
            if let colon = authority.lastIndex(of: ":") {
                host = authority[..<colon]
                portText = authority[authority.index(after: colon)...]
            } else {
                host = authority
                portText = nil
            }
            guard !host.isEmpty else { return .failure(.missingHost) }
            guard host.unicodeScalars.allSatisfy({ hostCharacters.contains($0) }) else { return .failure(.host) }
        }

        let port: Int
        if let portText {
            guard portText.allSatisfy({ $0.isASCII && $0.isNumber }), let number = Int(portText),
                (1...65535).contains(number)
            else {
                return .failure(.port)
            }
            port = number
        } else {
            port = scheme == .https ? 443 : 80
        }

        guard path.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7F }) else { return .failure(.path) }
        while path.hasSuffix("/") { path = path.dropLast() }
        return .success(UpstreamURL(scheme: scheme, host: host.lowercased(), port: port, basePath: String(path)))
    }

    private static let hostCharacters = Set(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~".unicodeScalars)

    enum URLProblem: Error, Equatable, CustomStringConvertible {
        case shape, scheme, queryOrFragment, userInfo, missingHost, host, port, path

        var description: String {
            switch self {
            case .shape: return "expected scheme://host[:port][/path]"
            case .scheme: return "the scheme must be http or https"
            case .queryOrFragment: return "a query ('?') or fragment ('#') is not allowed"
            case .userInfo: return "user info ('user:password@') is not allowed: put secrets in a credential"
            case .missingHost: return "a host is required"
            case .host: return "the host is not a valid host name or [IPv6] address"
            case .port: return "the port must be between 1 and 65535"
            case .path: return "the path may not contain spaces or control characters"
            }
        }
    }
}
