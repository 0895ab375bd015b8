import Crypto
import JWTKit

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The claims of the tokens the sandbox issues: simplejwt's set, in its order.
///
/// `exp` and `iat` are whole wall-clock seconds since the epoch, as simplejwt writes them, so a client that reads
/// `exp` sees what the platform would send. `user_id` is the user's UUID as text (inferred: the platform's user ids
/// are UUIDs, and simplejwt writes non-integer ids as strings).
public struct SandboxTokenClaims: JWTPayload, Equatable {
    public var token_type: String
    public var exp: Int
    public var iat: Int
    public var jti: String
    public var user_id: String

    public init(token_type: String, exp: Int, iat: Int, jti: String, user_id: String) {
        self.token_type = token_type
        self.exp = exp
        self.iat = iat
        self.jti = jti
        self.user_id = user_id
    }

    /// Nothing here: the sandbox checks expiry, type and revocation itself, after the signature, so that each
    /// failure gets simplejwt's own message.
    public func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// An account the sandbox accepts at login.
struct SandboxUser: Sendable {
    let id: String
    let email: String
    let password: [UInt8]
    let firstName: String
    let lastName: String

    init(email: String, password: String) {
        self.id = ProviderDirectory.stableUUID("credgate-sandbox/user/\(email)")
        self.email = email
        self.password = Array(password.utf8)
        // Names from the address's local part ("provider-admin" -> Provider Admin), so answers look lived-in.
        let words =
            email.split(separator: "@").first.map {
                $0.split(whereSeparator: { !$0.isLetter }).map {
                    $0.prefix(1).uppercased() + $0.dropFirst().lowercased()
                }
            } ?? []
        self.firstName = words.first ?? "Sandbox"
        self.lastName = words.count > 1 ? words.dropFirst().joined(separator: " ") : "User"
    }

    /// The `data` object of the login answer, without `jwt` (inferred field values: `user_type` and names).
    var fields: [(String, JSONValue)] {
        [
            ("id", .string(id)),
            ("email", .string(email)),
            ("first_name", .string(firstName)),
            ("last_name", .string(lastName)),
            ("user_type", "client_admin"),
            ("is_active", true),
        ]
    }
}

/// Why a token was refused, with simplejwt's message for it.
enum TokenRejection: Error, Equatable {
    case invalidOrExpired
    case wrongType
    case blacklisted

    var message: String {
        switch self {
        case .invalidOrExpired: "Token is invalid or expired"
        case .wrongType: "Token has wrong type"
        case .blacklisted: "Token is blacklisted"
        }
    }
}

/// Issues, checks, rotates and revokes the sandbox's session tokens, and injects login failures on request.
///
/// Tokens are real HS256 JWTs signed with a secret made fresh for each sandbox, so a token from one sandbox (or
/// a forged one) never passes in another. Revocation is by `jti`: every token issued is remembered until it
/// expires, so "revoke all" can blacklist exactly the tokens issued so far, and not the ones issued a moment later
/// in the same second (an `iat` cut-off could not tell them apart).
actor SessionAuthority {
    typealias Tokens = (access: String, refresh: String)

    private let keys: JWTKeyCollection
    private let usersByEmail: [String: SandboxUser]
    private let usersByID: [String: SandboxUser]
    private(set) var accessLifetime: Duration
    let refreshLifetime: Duration
    /// Tokens issued and not yet revoked: jti to `exp`.
    private var live: [String: Int] = [:]
    /// Rotated-out refresh tokens and revoked tokens: jti to `exp` (dropped once expired: they fail anyway).
    private var blacklist: [String: Int] = [:]
    /// The most recent tokens issued, access and refresh, oldest first (at most ``issuedKept``), so tests can
    /// look for every one of them where no token may appear.
    private(set) var issued: [String] = []
    static let issuedKept = 1_024
    /// Failures to answer the next logins with, then normal service.
    private var injectedFailures: (remaining: Int, status: Int) = (0, 401)

    init(users: [String: String], accessLifetime: Duration, refreshLifetime: Duration) {
        let accounts = users.map { SandboxUser(email: $0.key, password: $0.value) }
        self.usersByEmail = Dictionary(accounts.map { ($0.email, $0) }, uniquingKeysWith: { a, _ in a })
        self.usersByID = Dictionary(accounts.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        self.accessLifetime = accessLifetime
        self.refreshLifetime = refreshLifetime
        self.keys = JWTKeyCollection()
        self.secret = HMACKey(key: SymmetricKey(size: .bits256))
    }

    /// The per-sandbox signing secret; it never leaves this actor and is never logged.
    private let secret: HMACKey
    private var ready = false

    /// Adds the signing key on first use (an actor's synchronous init cannot await the key collection).
    private func prepare() async {
        guard !ready else { return }
        await keys.add(hmac: secret, digestAlgorithm: .sha256)
        ready = true
    }

    // MARK: Users

    /// The account whose email and password match, compared in time independent of the password's content.
    func authenticate(email: String, password: String) -> SandboxUser? {
        guard let user = usersByEmail[email] else { return nil }
        let given = Array(password.utf8)
        guard given.count == user.password.count else { return nil }
        var difference: UInt8 = 0
        for (a, b) in zip(given, user.password) { difference |= a ^ b }
        return difference == 0 ? user : nil
    }

    /// The account an API key stands for when no JWT says otherwise: the first email in order (inferred: the
    /// platform answers for the key's owner; the sandbox has one key and picks a stable account for it).
    var keyOwner: SandboxUser? {
        usersByEmail.keys.min().flatMap { usersByEmail[$0] }
    }

    // MARK: Issuing

    /// A fresh access/refresh pair for `user`.
    func issue(for user: SandboxUser) async throws -> Tokens {
        let access = try await sign("access", user: user.id, lifetime: accessLifetime)
        let refresh = try await sign("refresh", user: user.id, lifetime: refreshLifetime)
        return (access, refresh)
    }

    /// simplejwt's `TokenRefreshView` with rotation and blacklist-after-rotation: the refresh token is checked,
    /// blacklisted, and replaced by a new one (new `jti`, `iat`, `exp`) alongside a new access token.
    func refresh(_ token: String) async throws(TokenRejection) -> Tokens {
        let claims = try await check(token, type: "refresh")
        // Blacklist before the next suspension point, so two concurrent uses of one token cannot both succeed.
        live[claims.jti] = nil
        blacklist[claims.jti] = claims.exp
        do {
            let access = try await sign("access", user: claims.user_id, lifetime: accessLifetime)
            let refresh = try await sign("refresh", user: claims.user_id, lifetime: refreshLifetime)
            return (access, refresh)
        } catch {
            throw .invalidOrExpired
        }
    }

    /// The claims of a valid token: signed by this sandbox, unexpired, of the `type` wanted (nil: any), not
    /// blacklisted or revoked, and naming a known user.
    func check(_ token: String, type: String?) async throws(TokenRejection) -> SandboxTokenClaims {
        await prepare()
        let claims: SandboxTokenClaims
        do {
            claims = try await keys.verify(token, as: SandboxTokenClaims.self)
        } catch {
            throw .invalidOrExpired
        }
        // PyJWT: expired once `exp <= now`, now with its fraction.
        guard Double(claims.exp) > Self.now() else { throw .invalidOrExpired }
        if let type, claims.token_type != type { throw .wrongType }
        guard blacklist[claims.jti] == nil else { throw .blacklisted }
        guard usersByID[claims.user_id] != nil else { throw .invalidOrExpired }
        return claims
    }

    /// The user a valid access token names.
    func user(forAccess token: String) async throws(TokenRejection) -> SandboxUser {
        let claims = try await check(token, type: "access")
        guard let user = usersByID[claims.user_id] else { throw .invalidOrExpired }
        return user
    }

    // MARK: Test controls

    /// Blacklists every token issued so far, access and refresh alike; returns how many were live.
    @discardableResult
    func revokeAll() -> Int {
        let count = live.count
        blacklist.merge(live) { a, _ in a }
        live.removeAll()
        return count
    }

    /// Makes the next `count` logins fail with `status`.
    func failLogins(count: Int, status: Int) {
        injectedFailures = (max(0, count), status)
    }

    /// The status to fail this login with, if a failure is pending; consumes it.
    func takeInjectedFailure() -> Int? {
        guard injectedFailures.remaining > 0 else { return nil }
        injectedFailures.remaining -= 1
        return injectedFailures.status
    }

    /// Changes the lifetime of access tokens issued from now on (tokens already out keep their `exp`).
    func setAccessLifetime(_ lifetime: Duration) {
        accessLifetime = lifetime
    }

    // MARK: Helpers

    private func sign(_ type: String, user: String, lifetime: Duration) async throws -> String {
        await prepare()
        let now = Self.now()
        // simplejwt: `exp = now + lifetime` and `iat = now`, each truncated to whole seconds.
        let claims = SandboxTokenClaims(
            token_type: type,
            exp: Int((now + Self.seconds(lifetime)).rounded(.down)),
            iat: Int(now.rounded(.down)),
            jti: Self.randomHex(16),
            user_id: user
        )
        let token = try await keys.sign(claims)
        prune(now: now)
        live[claims.jti] = claims.exp
        if issued.count >= Self.issuedKept { issued.removeFirst(issued.count - Self.issuedKept + 1) }
        issued.append(token)
        return token
    }

    /// Forgets expired jtis now and then, so a long demo does not accumulate them (expired tokens fail anyway).
    private func prune(now: Double) {
        guard live.count + blacklist.count > 4_096 else { return }
        live = live.filter { Double($0.value) > now }
        blacklist = blacklist.filter { Double($0.value) > now }
    }

    /// Wall-clock seconds since the epoch, with the fraction: tokens carry wall-clock times, as the platform's do.
    static func now() -> Double {
        Date().timeIntervalSince1970
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// `uuid4().hex`-like: random bytes in lower-case hex.
    static func randomHex(_ bytes: Int) -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<bytes).map { _ in UInt8.random(in: .min ... .max, using: &generator) }.hexString
    }
}
