import Foundation

/// One login or refresh call as data: the request built from its ``JWTSessionConfig/Call`` and the tokens read
/// back from the answer. No I/O here, so every rule is testable without a transport.
struct SessionCall: Sendable {
    enum Purpose: String, Sendable {
        case login, refresh
    }

    /// The tokens an answer carried.
    struct Answer: Sendable {
        var accessToken: String
        var refreshToken: String?
    }

    /// Why a call failed, as a sentence safe to log and to show in the status (never a body, never a token).
    struct Failure: Error, Sendable {
        var message: String
        /// The platform's `Retry-After`, when it sent one.
        var retryAfter: Duration?
    }

    /// A request ready for a ``SessionTransport``.
    struct Request: Sendable {
        var method: String
        var path: String
        var headers: [(String, String)]
        var body: String
    }

    let purpose: Purpose
    let call: JWTSessionConfig.Call

    /// The request, with `{refresh_token}` and `{access_token}` filled in (JSON-escaped, for use inside a JSON
    /// string), and the current access token in `tokenHeader` when the call says `send_access_token`.
    func request(refreshToken: Secret?, accessToken: Secret?, tokenHeader: String, format: String) -> Request {
        var body = call.body.reveal()
        body = body.replacingOccurrences(of: "{refresh_token}", with: Self.jsonEscaped(refreshToken?.reveal() ?? ""))
        body = body.replacingOccurrences(of: "{access_token}", with: Self.jsonEscaped(accessToken?.reveal() ?? ""))
        var headers: [(String, String)] = []
        let named = Set(call.headers.map { $0.name.lowercased() })
        if !named.contains("content-type") { headers.append(("content-type", "application/json")) }
        if !named.contains("accept") { headers.append(("accept", "application/json")) }
        headers += call.headers.map { ($0.name, $0.value.reveal()) }
        if call.sendAccessToken, let accessToken, !named.contains(tokenHeader.lowercased()) {
            headers.append((tokenHeader, JWTSession.format(accessToken.reveal(), with: format)))
        }
        return Request(method: call.method, path: call.path, headers: headers, body: body)
    }

    /// The tokens in a complete answer, or why there are none.
    func read(status: Int, headers: [(String, String)], body: [UInt8]) -> Result<Answer, Failure> {
        guard (200..<300).contains(status) else {
            let retryAfter = headers.first { $0.0.lowercased() == "retry-after" }.flatMap { Self.retryAfter($0.1) }
            return .failure(Failure(message: "\(purpose.rawValue) answered \(status)", retryAfter: retryAfter))
        }
        guard let json = try? JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed]) else {
            return .failure(Failure(message: "\(purpose.rawValue) answered \(status) with a body that is not JSON"))
        }
        guard let access = Self.string(at: call.accessTokenPath, in: json), !access.isEmpty else {
            return .failure(
                Failure(
                    message: "\(purpose.rawValue) answer has no access token at '\(call.accessTokenPath)'"))
        }
        // The token becomes a header value: a line break in it would let the platform's answer inject headers.
        guard HTTPToken.isValidFieldValue(access) else {
            return .failure(
                Failure(
                    message: "\(purpose.rawValue) answer's access token has characters a header cannot carry"))
        }
        let refresh = call.refreshTokenPath.flatMap { Self.string(at: $0, in: json) }.flatMap { $0.isEmpty ? nil : $0 }
        return .success(Answer(accessToken: access, refreshToken: refresh))
    }

    // MARK: - Helpers

    /// The string at a dotted path (`data.jwt.access`); a number segment also indexes a list (`items.0.token`).
    static func string(at path: String, in json: Any) -> String? {
        var node: Any = json
        for key in path.split(separator: ".", omittingEmptySubsequences: false) {
            if let object = node as? [String: Any], let next = object[String(key)] {
                node = next
            } else if let list = node as? [Any], let index = Int(key), list.indices.contains(index) {
                node = list[index]
            } else {
                return nil
            }
        }
        return node as? String
    }

    /// `value` escaped for use between the quotes of a JSON string.
    static func jsonEscaped(_ value: String) -> String { JSONString.escape(value) }

    /// `Retry-After` as delta-seconds or an HTTP date; nil when it is neither.
    static func retryAfter(_ value: String, now: Date = Date()) -> Duration? {
        let trimmed = value.trimmingCharacters(in: .whitespaces)
        if let seconds = Int64(trimmed), seconds >= 0 { return .seconds(min(seconds, 365 * 86_400)) }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "GMT")
        formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
        guard let date = formatter.date(from: trimmed) else { return nil }
        let seconds = date.timeIntervalSince(now)
        return seconds > 0 ? .seconds(min(Int64(seconds.rounded(.up)), 365 * 86_400)) : .zero
    }
}
