import Crypto
import Hummingbird
import _CryptoExtras

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The platform's SSN encryption: AES-256-CTR keyed by the SHA-256 of the access token that travels with the
/// request, the 16-byte IV being the initial counter block, sent as `base64(iv || ciphertext)` (standard
/// alphabet, padded). Public so tests (and a gateway's tests) can make and read what the platform expects.
public enum SSNCipher {
    /// Encrypts the UTF-8 bytes of `ssn` exactly as given (the caller strips dashes and spaces first), under
    /// `token` (the access-token string exactly as in `Authorization: Bearer`). `iv` must be 16 bytes; nil picks
    /// a random one, as every real write does.
    public static func encrypt(ssn: String, token: String, iv: [UInt8]? = nil) -> String {
        let counter = iv ?? randomIV()
        precondition(counter.count == 16, "the IV is one 16-byte AES block")
        // Cannot throw: the key is 32 bytes and the nonce 16, the sizes AES._CTR accepts.
        let ciphertext = try! AES._CTR.encrypt(
            Array(ssn.utf8), using: key(token), nonce: AES._CTR.Nonce(nonceBytes: counter))
        return Data(counter + Array(ciphertext)).base64EncodedString()
    }

    /// The plaintext of `base64(iv || ciphertext)` under `token`; nil when the text is not base64, holds no
    /// ciphertext after the IV, or does not decrypt to UTF-8 (a wrong token gives bytes, rarely valid text).
    public static func decrypt(_ b64: String, token: String) -> String? {
        guard let data = Data(base64Encoded: b64), data.count > 16 else { return nil }
        let bytes = Array(data)
        guard let nonce = try? AES._CTR.Nonce(nonceBytes: bytes[0..<16]),
            let plain = try? AES._CTR.decrypt(bytes[16...], using: key(token), nonce: nonce)
        else { return nil }
        return String(validating: Array(plain), as: UTF8.self)
    }

    /// key = SHA-256(token), 32 bytes, hence AES-256.
    static func key(_ token: String) -> SymmetricKey {
        SymmetricKey(data: SHA256.hash(data: Array(token.utf8)))
    }

    static func randomIV() -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        return (0..<16).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
    }

    /// Exactly nine ASCII digits: what the platform stores (the client has already removed dashes and spaces).
    static func isValidSSN(_ text: String) -> Bool {
        text.utf8.count == 9 && text.utf8.allSatisfy { $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }
    }
}

/// Plaintext SSNs by profile id, as written through the encrypted route.
actor SSNStore {
    private var byProfile: [String: String] = [:]

    func get(_ profileID: String) -> String? { byProfile[profileID] }
    func set(_ profileID: String, _ ssn: String) { byProfile[profileID] = ssn }
}

extension SandboxResponder {
    /// `GET/PATCH /api/v1/users/retrieve-update-provider-ssn-sym-encrypted/{profile_id}/`, JWT only (the caller
    /// has already refused an API key). PATCH decrypts `{"ssn"}` with the bearer token and stores the digits;
    /// GET re-encrypts them under the caller's token with a fresh IV. Any profile id is accepted: the sandbox
    /// keeps SSNs for ids it has never listed, so tests need not fetch a provider first.
    func ssnEncrypted(
        _ request: Request, method: HTTPRequest.Method, profileID: String, recorded: inout RecordedRequest
    ) async throws -> Response {
        let check = await authenticate(request)
        guard case .user(_, let token) = check else { return rejection(check) }
        switch method {
        case .get:
            guard let ssn = await state.ssn.get(profileID) else { return JSONResponses.detail(.notFound, "Not found.") }
            return JSONResponses.json(
                .ok,
                .object([
                    ("profile_id", .string(profileID)),
                    ("ssn", .string(SSNCipher.encrypt(ssn: ssn, token: token))),
                ]))
        case .patch, .put:
            let body = try await ReadBody.read(request, recorded: &recorded)
            let field = body.jsonObject().flatMap { FieldValidation.requiredStrings(["ssn"], in: $0) }
            guard case .success(let fields) = field else { return field.failureResponse }
            let ciphertext = fields["ssn"]!
            guard let ssn = SSNCipher.decrypt(ciphertext, token: token), SSNCipher.isValidSSN(ssn) else {
                return JSONResponses.fieldError(.badRequest, field: "ssn", "Invalid SSN.")
            }
            await state.ssn.set(profileID, ssn)
            return JSONResponses.json(.ok, .object([("profile_id", .string(profileID)), ("ssn", .string(ciphertext))]))
        default:
            return JSONResponses.methodNotAllowed(request.method, allowed: ["GET", "PUT", "PATCH", "HEAD", "OPTIONS"])
        }
    }

    /// `GET /api/v1/users/retrieve-update-provider-ssn/{profile_id}/`: the stored digits in clear, JWT required
    /// (the API key is allowed alongside). The way to check that an encrypted write landed.
    func ssnPlain(_ request: Request, method: HTTPRequest.Method, profileID: String) async -> Response {
        let check = await authenticate(request)
        guard case .user = check else { return rejection(check) }
        switch method {
        case .get:
            guard let ssn = await state.ssn.get(profileID) else { return JSONResponses.detail(.notFound, "Not found.") }
            return JSONResponses.json(.ok, .object([("profile_id", .string(profileID)), ("ssn", .string(ssn))]))
        case .patch, .put:
            // Answered without reading the body: nothing in it could change the outcome.
            return JSONResponses.detail(.badRequest, "SSN is not updatable via this endpoint.")
        default:
            return JSONResponses.methodNotAllowed(request.method, allowed: ["GET", "PUT", "PATCH", "HEAD", "OPTIONS"])
        }
    }

    /// The response inside a refusal.
    func rejection(_ check: BearerCheck) -> Response {
        if case .rejected(let response) = check { return response }
        return JSONResponses.detail(.internalServerError, "Internal error.")
    }
}
