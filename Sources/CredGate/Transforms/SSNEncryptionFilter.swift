import Foundation
import NIOCore
import NIOHTTP1

/// Lets clients send a plain SSN: checks it and encrypts it exactly as the platform expects, with the very
/// session token injected on this request (so a replay with a new token encrypts again). Ciphertext an SDK
/// made with a credgate placeholder token is re-keyed; any other ciphertext passes through unchanged.
struct SSNEncryptionFilter: BodyFilter {
    /// Header the session token was written to, and the text around the token.
    let tokenHeader: String
    let tokenFormat: TokenFormat
    let placeholders: PlaceholderTokens?
    static let maxBody = 64 * 1024

    init(session: JWTSessionConfig, placeholders: PlaceholderTokens?) {
        self.tokenHeader = session.header
        self.tokenFormat = session.tokenFormat
        self.placeholders = placeholders
    }

    func bodyBufferLimit(for head: HTTPRequestHead, context: FilterContext) -> Int? {
        switch head.method {
        case .PATCH, .PUT, .POST: return Self.maxBody
        default: return nil
        }
    }

    func decodeBody(_ body: inout ByteBuffer, head: inout HTTPRequestHead, context: FilterContext)
        -> FilterHeadResult
    {
        guard var object = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any],
            let ssn = object["ssn"] as? String
        else {
            return .problem(
                Self.invalid("The body must be a JSON object with an \"ssn\" string, e.g. {\"ssn\": \"123-45-6789\"}."),
                context)
        }
        guard let token = injectedToken(head) else {
            return .problem(.ssnNoSession, context)
        }
        let digits: String
        if let plain = SSNCipher.normalize(ssn) {
            digits = plain
        } else if ssn.allSatisfy({ $0.isNumber || $0 == "-" || $0 == " " }) {
            return .problem(
                Self.invalid("\"ssn\" must be nine digits (dashes and spaces are allowed, e.g. 123-45-6789)."), context)
        } else if let placeholder = clientPlaceholder(context),
            let decrypted = SSNCipher.decrypt(ssn, token: placeholder)
        {
            // Ciphertext an SDK made with its placeholder token: re-key it for the real session.
            guard let plain = SSNCipher.normalize(decrypted) else {
                return .problem(Self.invalid("The encrypted \"ssn\" does not hold nine digits."), context)
            }
            digits = plain
        } else if let data = Data(base64Encoded: ssn), data.count > 16 {
            return .proceed // already the platform's ciphertext
        } else {
            return .problem(
                Self.invalid("\"ssn\" must be nine digits (dashes and spaces are allowed, e.g. 123-45-6789)."), context)
        }
        guard let encrypted = try? SSNCipher.encrypt(digits, token: token) else {
            return .problem(.ssnEncryptionFailed, context)
        }
        object["ssn"] = encrypted
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]) else {
            return .problem(Self.invalid("The body could not be re-encoded as JSON."), context)
        }
        body = ByteBuffer(bytes: data)
        head.headers.replaceOrAdd(name: "content-type", value: "application/json")
        return .proceed
    }

    private func injectedToken(_ head: HTTPRequestHead) -> String? {
        guard let value = head.headers.first(name: tokenHeader), let token = tokenFormat.token(in: value),
            !token.isEmpty
        else { return nil }
        return String(token)
    }

    /// The placeholder token the client itself sent, if it sent one of ours.
    private func clientPlaceholder(_ context: FilterContext) -> String? {
        guard let placeholders, let value = context.clientHead.headers.first(name: tokenHeader),
            let token = tokenFormat.token(in: value).map(String.init)
        else { return nil }
        return placeholders.isPlaceholder(token) ? token : nil
    }

    static func invalid(_ why: String) -> GatewayError {
        .invalidSSN(why: why)
    }
}
