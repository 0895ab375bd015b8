import AsyncHTTPClient
import Foundation
import JWTKit
import NIOCore
import NIOHTTP1
import Sandbox
import Testing

/// The sandbox's session side (login, tokens, JWT routes, SSN, provider documents, test controls), through real
/// sockets on an ephemeral loopback port.
@Suite("Sandbox sessions")
struct SandboxSessionTests {
    static let apiKey = "sandbox-session-test-key-42"
    static let email = "provider-admin@example.com"
    static let password = "correct horse battery staple"
    static let profileID = "6d1f3c2a-0b7e-4f5e-9a1c-2d3e4f5a6b7c"

    // MARK: Login

    @Test func loginWithGoodCredentialsAnswersTheUserAndTwoTokens() async throws {
        try await withSession { sandbox, client in
            // The API key is not needed, and accepted when sent (the SDK sends it).
            for key in [nil, Self.apiKey] {
                let response = try await client.session(
                    .POST, sandbox.baseURL + "/api/v1/users/login/", key: key,
                    json: ["email": Self.email, "password": Self.password, "remember": true])
                #expect(response.status == .ok)
                #expect(response.headers.first(name: "content-type") == "application/json")
                let object = try await response.sessionObject()
                #expect(object["msg"] as? String == "Login successful")
                #expect((object["extra_data"] as? [String: Any])?.isEmpty == true)
                let data = try #require(object["data"] as? [String: Any])
                #expect(data["email"] as? String == Self.email)
                #expect(UUID(uuidString: data["id"] as? String ?? "") != nil)
                #expect(data["first_name"] is String && data["last_name"] is String && data["user_type"] is String)
                #expect(data["is_active"] as? Bool == true)
                let jwt = try #require(data["jwt"] as? [String: String])
                #expect(jwt["access"]?.split(separator: ".").count == 3)
                #expect(jwt["refresh"]?.split(separator: ".").count == 3)
                #expect(jwt["access"] != jwt["refresh"])
            }
            // The login body is recorded (size and digest) like any other.
            let recorded = try #require(await sandbox.recorder.last())
            #expect(recorded.path == "/api/v1/users/login/" && recorded.bodyBytes > 0 && recorded.bodySHA256 != nil)
            let counters = await sandbox.counters()
            #expect(counters.logins == 2 && counters.loginFailures == 0)
            #expect(counters.route("POST", "/api/v1/users/login/") == 2)
        }
    }

    @Test func loginWithBadCredentialsOrFieldsIsRefused() async throws {
        try await withSession { sandbox, client in
            let login = sandbox.baseURL + "/api/v1/users/login/"
            for credentials in [
                ["email": Self.email, "password": "wrong"], ["email": "nobody@example.com", "password": Self.password],
                ["email": Self.email.uppercased(), "password": Self.password],
            ] {
                let response = try await client.session(.POST, login, json: credentials)
                #expect(response.status == .unauthorized)
                #expect(
                    try await response.sessionObject() as? [String: String] == [
                        "detail": "No active account found with the given credentials"
                    ])
            }

            let missing = try await client.session(.POST, login, json: ["remember": true])
            #expect(missing.status == .badRequest)
            let errors = try await missing.sessionObject()
            #expect(errors["email"] as? [String] == ["This field is required."])
            #expect(errors["password"] as? [String] == ["This field is required."])

            let blank = try await client.session(.POST, login, json: ["email": "", "password": NSNull()])
            #expect(blank.status == .badRequest)
            let blankErrors = try await blank.sessionObject()
            #expect(blankErrors["email"] as? [String] == ["This field may not be blank."])
            #expect(blankErrors["password"] as? [String] == ["This field may not be null."])

            let garbage = try await client.session(.POST, login, body: Array("{not json".utf8))
            #expect(garbage.status == .badRequest)

            #expect(await sandbox.counters().loginFailures == 6)
            #expect(await sandbox.counters().logins == 0)
        }
    }

    @Test func loginAcceptsTheConfiguredUserOnly() async throws {
        var options = SandboxOptions(apiKey: Self.apiKey, user: "ops@clinic.test", password: "s3cret")
        options.accessLifetime = .seconds(60)
        try await withSession(options) { sandbox, client throws in
            let login = sandbox.baseURL + "/api/v1/users/login/"
            #expect(
                try await client.session(.POST, login, json: ["email": "ops@clinic.test", "password": "s3cret"]).status
                    == .ok)
            #expect(
                try await client.session(.POST, login, json: ["email": Self.email, "password": Self.password]).status
                    == .unauthorized)
        }
        // The description never shows a password or the key.
        #expect(!options.description.contains("s3cret") && !options.description.contains(Self.apiKey))
        #expect(SandboxOptions(apiKey: "k").users == [Self.email: Self.password])
    }

    // MARK: Tokens

    @Test func tokensAreHS256WithSimplejwtClaimsAndTheConfiguredLifetimes() async throws {
        var options = SandboxOptions(apiKey: Self.apiKey)
        options.accessLifetime = .seconds(3)
        options.refreshLifetime = .seconds(7_200)
        try await withSession(options) { sandbox, client in
            let before = Int(Date().timeIntervalSince1970)
            let (tokens, userID) = try await client.sessionLogin(sandbox)
            let after = Int(Date().timeIntervalSince1970)
            let keys = JWTKeyCollection()
            let access = try await keys.unverified(tokens.access, as: TestClaims.self)
            let refresh = try await keys.unverified(tokens.refresh, as: TestClaims.self)
            #expect(access.token_type == "access" && refresh.token_type == "refresh")
            #expect(access.exp - access.iat == 3)
            #expect(refresh.exp - refresh.iat == 7_200)
            #expect(access.iat >= before && access.iat <= after)
            #expect(access.user_id == userID && refresh.user_id == userID)
            #expect(access.jti.count == 32 && access.jti.allSatisfy(\.isHexDigit) && access.jti != refresh.jti)

            let header = try #require(Self.base64URLDecode(tokens.access.split(separator: ".")[0]))
            let fields = try #require(try JSONSerialization.jsonObject(with: header) as? [String: Any])
            #expect(fields["alg"] as? String == "HS256")
            #expect(fields["typ"] as? String == "JWT")

            // The lifetime can change at run time, over HTTP and in Swift; tokens already out keep theirs.
            let set = try await client.session(.POST, sandbox.baseURL + "/sandbox/access-lifetime?seconds=5", key: nil)
            #expect(set.status == .ok)
            let five = try await keys.unverified(
                try await client.sessionLogin(sandbox).tokens.access, as: TestClaims.self)
            #expect(five.exp - five.iat == 5)
            try await sandbox.setAccessLifetime(.seconds(10_080))
            let long = try await keys.unverified(
                try await client.sessionLogin(sandbox).tokens.access, as: TestClaims.self)
            #expect(long.exp - long.iat == 10_080)
            #expect(
                try await client.session(.POST, sandbox.baseURL + "/sandbox/access-lifetime?seconds=-1", key: nil)
                    .status == .badRequest)
            #expect(
                try await client.session(.POST, sandbox.baseURL + "/sandbox/access-lifetime", key: nil).status
                    == .badRequest)
            await #expect(throws: (any Error).self) { try await sandbox.setAccessLifetime(.zero) }
        }
    }

    /// The sandbox checks `exp` against the wall clock, which a test cannot move: this one waits for a real
    /// expiry. A 6 s token lives at least 5 s (`exp` is whole seconds), so the two calls that need it valid hold
    /// through a stall of several seconds; the wait then ends just past the token's own `exp`, whenever that is.
    @Test func anExpiredAccessTokenIsRefusedOnJWTRoutes() async throws {
        var options = SandboxOptions(apiKey: Self.apiKey)
        options.accessLifetime = .seconds(6)
        try await withSession(options) { sandbox, client in
            let (tokens, _) = try await client.sessionLogin(sandbox)
            let documents = sandbox.baseURL + "/api/v1/users/provider-documents/"
            #expect(try await client.session(.GET, documents, bearer: tokens.access).status == .ok)
            #expect(
                try await client.session(
                    .POST, sandbox.baseURL + "/api/v1/users/token/verify/", json: ["token": tokens.access]
                ).status == .ok)

            // Expired once `exp <= now` (PyJWT); a little past it for the wall clock's resolution.
            let exp = try await JWTKeyCollection().unverified(tokens.access, as: TestClaims.self).exp
            let wait = Double(exp) - Date().timeIntervalSince1970 + 0.1
            if wait > 0 { try await Task.sleep(for: .milliseconds(Int64(wait * 1000))) }
            let expired = try await client.session(.GET, documents, bearer: tokens.access)
            #expect(expired.status == .unauthorized)
            #expect(expired.headers.first(name: "www-authenticate") == "Bearer realm=\"api\"")
            let body = try await expired.sessionObject()
            #expect(body["detail"] as? String == "Given token not valid for any token type")
            #expect(body["code"] as? String == "token_not_valid")
            let messages = try #require(body["messages"] as? [[String: String]])
            #expect(
                messages == [
                    ["token_class": "AccessToken", "token_type": "access", "message": "Token is invalid or expired"]
                ])

            let verify = try await client.session(
                .POST, sandbox.baseURL + "/api/v1/users/token/verify/", json: ["token": tokens.access])
            #expect(verify.status == .unauthorized)
            #expect(
                try await verify.sessionObject() as? [String: String] == [
                    "detail": "Token is invalid or expired", "code": "token_not_valid",
                ])

            // The refresh token outlives it and brings a working access token.
            let renewed = try await client.sessionRefresh(sandbox, tokens.refresh)
            #expect(try await client.session(.GET, documents, bearer: renewed.access).status == .ok)
            #expect(await sandbox.counters().jwtRejections == 1)
        }
    }

    @Test func jwtRoutesRefuseMissingMalformedForgedAndWrongTypeTokens() async throws {
        try await withSession { sandbox, client in
            let (tokens, userID) = try await client.sessionLogin(sandbox)
            let documents = sandbox.baseURL + "/api/v1/users/provider-documents/"

            let none = try await client.session(.GET, documents)
            #expect(none.status == .unauthorized)
            #expect(
                try await none.sessionObject() as? [String: String] == [
                    "detail": "Authentication credentials were not provided."
                ])
            // Another scheme counts as no credentials, as in simplejwt.
            let basic = try await client.session(.GET, documents, headers: [("Authorization", "Basic dXNlcjpwYXNz")])
            #expect(
                try await basic.sessionObject() as? [String: String] == [
                    "detail": "Authentication credentials were not provided."
                ])
            let malformed = try await client.session(.GET, documents, headers: [("Authorization", "Bearer a b")])
            #expect(malformed.status == .unauthorized)
            #expect(try await malformed.sessionObject()["code"] as? String == "bad_authorization_header")

            // Signed with another secret, or not signed at all: refused although the claims look right.
            let now = Int(Date().timeIntervalSince1970)
            let claims = TestClaims(
                token_type: "access", exp: now + 600, iat: now, jti: String(repeating: "a", count: 32), user_id: userID)
            let forger = await JWTKeyCollection().add(
                hmac: HMACKey(from: "not the sandbox secret, but 32+ bytes long"), digestAlgorithm: .sha256)
            let forged = try await forger.sign(claims)
            #expect(try await client.session(.GET, documents, bearer: forged).status == .unauthorized)
            let parts = tokens.access.split(separator: ".")
            #expect(
                try await client.session(.GET, documents, bearer: "\(parts[0]).\(parts[1]).").status == .unauthorized)
            #expect(try await client.session(.GET, documents, bearer: "not-a-jwt").status == .unauthorized)

            let wrongType = try await client.session(.GET, documents, bearer: tokens.refresh)
            #expect(wrongType.status == .unauthorized)
            let messages = try await wrongType.sessionObject()["messages"] as? [[String: String]]
            #expect(messages?.first?["message"] == "Token has wrong type")

            #expect(await sandbox.counters().jwtRejections == 7)
            #expect(try await client.session(.GET, documents, bearer: tokens.access).status == .ok)
        }
    }

    @Test func refreshRotatesAndBlacklistsTheOldRefreshToken() async throws {
        try await withSession { sandbox, client in
            let (first, _) = try await client.sessionLogin(sandbox)
            let refreshURL = sandbox.baseURL + "/api/v1/users/token/refresh/"

            // No key needed; an Authorization header (even a stale one) does no harm.
            let rotated = try await client.session(
                .POST, refreshURL, key: nil, bearer: first.access, json: ["refresh": first.refresh])
            #expect(rotated.status == .ok)
            let pair = try #require(try await rotated.sessionObject() as? [String: String])
            #expect(Array(pair.keys).sorted() == ["access", "refresh"])
            let second = (access: pair["access"]!, refresh: pair["refresh"]!)
            #expect(second.refresh != first.refresh && second.access != first.access)
            let claims = try await JWTKeyCollection().unverified(second.refresh, as: TestClaims.self)
            #expect(claims.token_type == "refresh" && claims.exp - claims.iat == 86_400)

            let reused = try await client.session(.POST, refreshURL, json: ["refresh": first.refresh])
            #expect(reused.status == .unauthorized)
            #expect(
                try await reused.sessionObject() as? [String: String] == [
                    "detail": "Token is blacklisted", "code": "token_not_valid",
                ])

            let third = try await client.sessionRefresh(sandbox, second.refresh)
            #expect(
                try await client.session(
                    .GET, sandbox.baseURL + "/api/v1/users/provider-documents/", bearer: third.access
                ).status == .ok)
            // The access token issued before the rotation stays valid until it expires, as in simplejwt.
            #expect(
                try await client.session(
                    .GET, sandbox.baseURL + "/api/v1/users/provider-documents/", bearer: first.access
                ).status == .ok)

            let wrongType = try await client.session(.POST, refreshURL, json: ["refresh": third.access])
            #expect(try await wrongType.sessionObject()["detail"] as? String == "Token has wrong type")
            let invalid = try await client.session(.POST, refreshURL, json: ["refresh": "garbage"])
            #expect(invalid.status == .unauthorized)
            #expect(
                try await invalid.sessionObject() as? [String: String] == [
                    "detail": "Token is invalid or expired", "code": "token_not_valid",
                ])
            let missing = try await client.session(.POST, refreshURL, json: [:])
            #expect(missing.status == .badRequest)
            #expect(try await missing.sessionObject()["refresh"] as? [String] == ["This field is required."])

            // Ten concurrent uses of one refresh token: exactly one wins.
            let statuses = try await withThrowingTaskGroup(of: UInt.self) { group in
                for _ in 0..<10 {
                    group.addTask {
                        try await client.session(.POST, refreshURL, json: ["refresh": third.refresh]).status.code
                    }
                }
                return try await group.reduce(into: [UInt]()) { $0.append($1) }
            }
            #expect(statuses.filter { $0 == 200 }.count == 1)
            #expect(statuses.filter { $0 == 401 }.count == 9)

            let counters = await sandbox.counters()
            #expect(counters.refreshes == 3)
            #expect(counters.refreshFailures == 13)
            #expect(counters.route("POST", "/api/v1/users/token/refresh/") == 16)
        }
    }

    @Test func revokingEndsEveryTokenIssuedSoFar() async throws {
        try await withSession { sandbox, client in
            let documents = sandbox.baseURL + "/api/v1/users/provider-documents/"
            let (old, _) = try await client.sessionLogin(sandbox)
            #expect(try await client.session(.GET, documents, bearer: old.access).status == .ok)

            let revoke = try await client.session(.POST, sandbox.baseURL + "/sandbox/revoke-tokens", key: nil)
            #expect(revoke.status == .ok)
            #expect(try await revoke.sessionObject()["revoked"] as? Int == 2)

            let refused = try await client.session(.GET, documents, bearer: old.access)
            #expect(refused.status == .unauthorized)
            let messages = try await refused.sessionObject()["messages"] as? [[String: String]]
            #expect(messages?.first?["message"] == "Token is blacklisted")
            #expect(
                try await client.session(
                    .POST, sandbox.baseURL + "/api/v1/users/token/refresh/", json: ["refresh": old.refresh]
                ).status == .unauthorized)

            // Tokens issued after the revocation work, even within the same second.
            let (fresh, _) = try await client.sessionLogin(sandbox)
            #expect(try await client.session(.GET, documents, bearer: fresh.access).status == .ok)
            #expect(await sandbox.revokeTokens() == 2)
            #expect(try await client.session(.GET, documents, bearer: fresh.access).status == .unauthorized)
        }
    }

    @Test func injectedLoginFailuresComeFirstThenLoginsSucceed() async throws {
        try await withSession { sandbox, client in
            let login = sandbox.baseURL + "/api/v1/users/login/"
            let good: [String: Any] = ["email": Self.email, "password": Self.password]

            let set = try await client.session(
                .POST, sandbox.baseURL + "/sandbox/fail-logins?count=2&status=429", key: nil)
            #expect(set.status == .ok)
            for _ in 0..<2 {
                let throttled = try await client.session(.POST, login, json: good)
                #expect(throttled.status == .tooManyRequests)
                #expect(throttled.headers.first(name: "retry-after") == "1")
            }
            #expect(try await client.session(.POST, login, json: good).status == .ok)

            try await sandbox.failLogins(1, status: 500)
            let down = try await client.session(.POST, login, json: good)
            #expect(down.status == .internalServerError)
            #expect(down.headers.first(name: "content-type")?.hasPrefix("text/html") == true)
            #expect(try await client.session(.POST, login, json: good).status == .ok)

            _ = try await client.session(.POST, sandbox.baseURL + "/sandbox/fail-logins?count=1", key: nil)
            let refused = try await client.session(.POST, login, json: good)
            #expect(refused.status == .unauthorized)
            #expect(
                try await refused.sessionObject() as? [String: String] == [
                    "detail": "No active account found with the given credentials"
                ])

            #expect(
                try await client.session(.POST, sandbox.baseURL + "/sandbox/fail-logins?count=1&status=200", key: nil)
                    .status == .badRequest)
            #expect(
                try await client.session(.POST, sandbox.baseURL + "/sandbox/fail-logins?count=x", key: nil).status
                    == .badRequest)
            #expect(
                try await client.session(.GET, sandbox.baseURL + "/sandbox/fail-logins", key: nil).status
                    == .methodNotAllowed)
            await #expect(throws: (any Error).self) { try await sandbox.failLogins(1, status: 302) }

            let counters = await sandbox.counters()
            #expect(counters.logins == 2 && counters.loginFailures == 4)
        }
    }

    // MARK: Routes needing key and JWT

    @Test func uploadPresignAndDocumentsNeedBothTheKeyAndTheJWT() async throws {
        try await withSession { sandbox, client in
            let (tokens, _) = try await client.sessionLogin(sandbox)
            for path in [
                "/api/v1/files/presign-s3-url/presign_s3_url/", "/api/v1/files/handle/",
                "/api/v1/users/provider-documents/",
            ] {
                let url = sandbox.baseURL + path
                let body = Array("{\"s3_url\":\"s3://bucket/key\",\"presigned_url\":\"\"}".utf8)
                let keyOnly = try await client.session(.POST, url, body: body)
                #expect(keyOnly.status == .unauthorized, "\(path)")
                #expect(
                    try await keyOnly.sessionObject()["detail"] as? String
                        == "Authentication credentials were not provided.")
                let jwtOnly = try await client.session(.POST, url, key: nil, bearer: tokens.access, body: body)
                #expect(jwtOnly.status == .unauthorized)
                #expect(try await jwtOnly.sessionObject()["detail"] as? String == "Invalid API key")
                let wrongKey = try await client.session(.POST, url, key: "nope", bearer: tokens.access, body: body)
                #expect(wrongKey.status == .unauthorized)
            }
            // With both, presign answers a presigned URL, and a body that is not multipart is still echoed by upload.
            let presign = try await client.session(
                .POST, sandbox.baseURL + "/api/v1/files/presign-s3-url/presign_s3_url/",
                bearer: tokens.access, json: ["s3_url": "s3://b/k", "presigned_url": ""])
            #expect(presign.status == .ok)
            #expect(
                (try await presign.sessionObject()["presigned_url"] as? String)?.contains(
                    "/sandbox-s3/b/k?X-Amz-Algorithm=") == true)
            let upload = try await client.session(
                .POST, sandbox.baseURL + "/api/v1/files/handle/", bearer: tokens.access,
                body: Array(repeating: 0x25, count: 1000))
            #expect(upload.status == .ok)
            #expect(try await upload.sessionObject()["body_bytes"] as? Int == 1000)
            // Refused requests are recorded too, without their bodies.
            let recorded = await sandbox.recorder.all()
            #expect(recorded.count == 12) // login, 3 × 3 refusals, presign, upload
            #expect(recorded[1].bodyBytes == 0)
        }
    }

    @Test func providerDocumentsAreStoredAndListedInPages() async throws {
        try await withSession { sandbox, client in
            let (tokens, _) = try await client.sessionLogin(sandbox)
            let documents = sandbox.baseURL + "/api/v1/users/provider-documents/"
            let other = "0f0f0f0f-1111-4222-8333-444455556666"

            var ids: [String] = []
            for (i, provider) in [Self.profileID, Self.profileID, other].enumerated() {
                // As the SDK sends it: an empty id and presigned URL, nulls for unset fields.
                let created = try await client.session(
                    .POST, documents, bearer: tokens.access,
                    json: [
                        "id": "", "provider": provider, "document_name": "license-\(i).pdf", "document_type": "license",
                        "document_url": "s3://assured-bucket/docs/\(i).pdf", "presigned_document_url": "",
                        "expiry_date": NSNull(),
                    ])
                #expect(created.status == .created)
                let document = try await created.sessionObject()
                #expect(UUID(uuidString: document["id"] as? String ?? "") != nil)
                #expect(document["provider"] as? String == provider)
                #expect(document["document_name"] as? String == "license-\(i).pdf")
                #expect(document["document_type"] as? String == "license")
                #expect(document["document_url"] as? String == "s3://assured-bucket/docs/\(i).pdf")
                #expect(
                    (document["presigned_document_url"] as? String)?.contains(
                        "/sandbox-s3/assured-bucket/docs/\(i).pdf?X-Amz-") == true)
                #expect(document["created_at"] is String)
                ids.append(document["id"] as! String)
            }

            let page = try await client.session(
                .GET, documents + "?provider=\(Self.profileID)&limit=1", bearer: tokens.access
            ).sessionObject()
            #expect(page["count"] as? Int == 2)
            #expect((page["results"] as? [[String: Any]])?.first?["id"] as? String == ids[0])
            #expect(page["next"] as? String == documents + "?limit=1&offset=1&provider=\(Self.profileID)")
            #expect(page["previous"] is NSNull)
            let all = try await client.session(.GET, documents, bearer: tokens.access).sessionObject()
            #expect(all["count"] as? Int == 3)

            let one = try await client.session(.GET, documents + ids[2] + "/", bearer: tokens.access)
            #expect(one.status == .ok)
            #expect(try await one.sessionObject()["provider"] as? String == other)
            #expect(
                try await client.session(.DELETE, documents + ids[2] + "/", bearer: tokens.access).status == .noContent)
            #expect(try await client.session(.GET, documents + ids[2] + "/", bearer: tokens.access).status == .notFound)
            #expect(try await client.session(.GET, documents + ids[2] + "/").status == .unauthorized)

            let missing = try await client.session(.POST, documents, bearer: tokens.access, json: ["provider": other])
            #expect(missing.status == .badRequest)
            #expect(try await missing.sessionObject()["document_url"] as? [String] == ["This field is required."])
            let long = try await client.session(
                .POST, documents, bearer: tokens.access,
                json: ["provider": other, "document_url": "s3://b/" + String(repeating: "k", count: 500)])
            #expect(long.status == .badRequest)
            #expect(
                try await client.session(.PUT, documents, bearer: tokens.access, json: [:]).status == .methodNotAllowed)

            let counters = await sandbox.counters()
            #expect(counters.route("POST", "/api/v1/users/provider-documents/") == 5)
            #expect(counters.route("GET", "/api/v1/users/provider-documents/{id}/") == 3)
        }
    }

    @Test func loggedInUserDetailsNeedsTheKeyAndReadsAnOptionalJWT() async throws {
        try await withSession { sandbox, client in
            let details = sandbox.baseURL + "/api/v1/users/logged-in-user-details/"
            let (tokens, userID) = try await client.sessionLogin(sandbox)
            let keyOnly = try await client.session(.GET, details)
            #expect(keyOnly.status == .ok)
            #expect((try await keyOnly.sessionObject()["data"] as? [String: Any])?["email"] as? String == Self.email)
            let both = try await client.session(.GET, details, bearer: tokens.access)
            #expect((try await both.sessionObject()["data"] as? [String: Any])?["id"] as? String == userID)
            #expect(try await client.session(.GET, details, bearer: "garbage").status == .unauthorized)
            let jwtOnly = try await client.session(.GET, details, key: nil, bearer: tokens.access)
            #expect(jwtOnly.status == .unauthorized)
            #expect(try await jwtOnly.sessionObject()["detail"] as? String == "Invalid API key")
        }
    }

    // MARK: SSN

    @Test func ssnCipherMatchesAnIndependentAES256CTR() throws {
        // Computed with Python's `cryptography` (and `openssl enc -aes-256-ctr`): key SHA-256(token), the IV as the
        // initial counter block, base64(iv || ciphertext).
        let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJ0b2tlbl90eXBlIjoiYWNjZXNzIn0.c2lnbmF0dXJl"
        let iv: [UInt8] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 255]
        let expected = "AAECAwQFBgcICQoLDA0O/+nQKG2rmxSP+g=="
        #expect(SSNCipher.encrypt(ssn: "123456789", token: token, iv: iv) == expected)
        #expect(SSNCipher.decrypt(expected, token: token) == "123456789")
        #expect(SSNCipher.decrypt(expected, token: token + "x") != "123456789")
        #expect(SSNCipher.decrypt("not base64!", token: token) == nil)
        #expect(SSNCipher.decrypt(Data(iv).base64EncodedString(), token: token) == nil) // an IV and nothing else
        // A fresh IV every time.
        #expect(SSNCipher.encrypt(ssn: "123456789", token: token) != SSNCipher.encrypt(ssn: "123456789", token: token))
    }

    @Test func encryptedSSNRouteRefusesTheKeyAndTakesTheJWTAlone() async throws {
        try await withSession { sandbox, client in
            let (tokens, _) = try await client.sessionLogin(sandbox)
            let url = sandbox.baseURL + "/api/v1/users/retrieve-update-provider-ssn-sym-encrypted/\(Self.profileID)/"
            let ciphertext = SSNCipher.encrypt(ssn: "123456789", token: tokens.access)

            for key in [Self.apiKey, "wrong", ""] {
                let withKey = try await client.session(
                    .PATCH, url, key: key, bearer: tokens.access, json: ["ssn": ciphertext])
                #expect(withKey.status == .forbidden)
                #expect(
                    try await withKey.sessionObject() as? [String: String] == [
                        "detail": "API key authentication is not allowed on this endpoint."
                    ])
            }
            #expect(try await client.session(.GET, url).status == .forbidden)
            #expect(try await client.session(.GET, url, key: nil).status == .unauthorized)
            #expect(await sandbox.storedSSN(profileID: Self.profileID) == nil)
            #expect(try await client.session(.GET, url, key: nil, bearer: tokens.access).status == .notFound)

            let patched = try await client.session(
                .PATCH, url, key: nil, bearer: tokens.access, json: ["ssn": ciphertext])
            #expect(patched.status == .ok)
            #expect(
                try await patched.sessionObject() as? [String: String] == [
                    "profile_id": Self.profileID, "ssn": ciphertext,
                ])
            #expect(await sandbox.storedSSN(profileID: Self.profileID) == "123456789")

            // GET answers ciphertext under the caller's token, with a new IV.
            let read = try await client.session(.GET, url, key: nil, bearer: tokens.access).sessionObject()
            let readBack = try #require(read["ssn"] as? String)
            #expect(readBack != ciphertext)
            #expect(SSNCipher.decrypt(readBack, token: tokens.access) == "123456789")
            #expect(read["profile_id"] as? String == Self.profileID)

            let counters = await sandbox.counters()
            #expect(
                counters.route("PATCH", "/api/v1/users/retrieve-update-provider-ssn-sym-encrypted/{profile_id}/") == 4)
            #expect(counters.jwtRejections == 1)
        }
    }

    @Test func ssnWriteIsReadBackInClearThroughThePlaintextRoute() async throws {
        try await withSession { sandbox, client in
            let (first, _) = try await client.sessionLogin(sandbox)
            let encrypted =
                sandbox.baseURL + "/api/v1/users/retrieve-update-provider-ssn-sym-encrypted/\(Self.profileID)/"
            let plain = sandbox.baseURL + "/api/v1/users/retrieve-update-provider-ssn/\(Self.profileID)/"
            #expect(try await client.session(.GET, plain, bearer: first.access).status == .notFound)

            let write = try await client.session(
                .PATCH, encrypted, key: nil, bearer: first.access,
                json: ["ssn": SSNCipher.encrypt(ssn: "987654321", token: first.access)])
            #expect(write.status == .ok)

            // Read back with another session's token; the key may come along on this route.
            let (second, _) = try await client.sessionLogin(sandbox)
            for key in [nil, Self.apiKey] {
                let read = try await client.session(.GET, plain, key: key, bearer: second.access)
                #expect(read.status == .ok)
                #expect(
                    try await read.sessionObject() as? [String: String] == [
                        "profile_id": Self.profileID, "ssn": "987654321",
                    ])
            }
            #expect(try await client.session(.GET, plain).status == .unauthorized)
            #expect(try await client.session(.GET, plain, key: "wrong", bearer: second.access).status == .unauthorized)
            let update = try await client.session(
                .PATCH, plain, key: nil, bearer: second.access, json: ["ssn": "111223333"])
            #expect(update.status == .badRequest)
            #expect(
                try await update.sessionObject() as? [String: String] == [
                    "detail": "SSN is not updatable via this endpoint."
                ])
            #expect(await sandbox.storedSSN(profileID: Self.profileID) == "987654321")
        }
    }

    @Test func invalidSSNCiphertextIs400AndChangesNothing() async throws {
        try await withSession { sandbox, client in
            let (tokens, _) = try await client.sessionLogin(sandbox)
            let (other, _) = try await client.sessionLogin(sandbox)
            let url = sandbox.baseURL + "/api/v1/users/retrieve-update-provider-ssn-sym-encrypted/\(Self.profileID)/"
            _ = try await client.session(
                .PATCH, url, key: nil, bearer: tokens.access,
                json: ["ssn": SSNCipher.encrypt(ssn: "123456789", token: tokens.access)])

            let invalid = [
                SSNCipher.encrypt(ssn: "12345678", token: tokens.access), // eight digits
                SSNCipher.encrypt(ssn: "123-45-6789", token: tokens.access), // dashes are the client's to strip
                SSNCipher.encrypt(ssn: "12345678a", token: tokens.access),
                SSNCipher.encrypt(ssn: "555667777", token: other.access), // keyed by another token
                "not base64 at all",
                "123456789", // plaintext where ciphertext belongs
            ]
            for ssn in invalid {
                let response = try await client.session(
                    .PATCH, url, key: nil, bearer: tokens.access, json: ["ssn": ssn])
                #expect(response.status == .badRequest, "\(ssn)")
                #expect(try await response.sessionObject() as? [String: [String]] == ["ssn": ["Invalid SSN."]])
            }
            let missing = try await client.session(.PATCH, url, key: nil, bearer: tokens.access, json: [:])
            #expect(missing.status == .badRequest)
            #expect(try await missing.sessionObject() as? [String: [String]] == ["ssn": ["This field is required."]])
            #expect(await sandbox.storedSSN(profileID: Self.profileID) == "123456789")
        }
    }

    // MARK: Counters

    @Test func countersAreServedOverHTTPAndInSwift() async throws {
        try await withSession { sandbox, client in
            let (tokens, _) = try await client.sessionLogin(sandbox)
            _ = try await client.session(
                .POST, sandbox.baseURL + "/api/v1/users/login/", json: ["email": Self.email, "password": "x"])
            _ = try await client.sessionRefresh(sandbox, tokens.refresh)
            _ = try await client.session(.GET, sandbox.baseURL + "/api/v1/users/provider-documents/")
            _ = try await client.session(.GET, sandbox.baseURL + "/api/v1/users/providers-list/?limit=1")
            _ = try await client.session(
                .GET, sandbox.baseURL + "/api/v1/users/retrieve-update-provider-ssn/abc/", key: nil,
                bearer: tokens.access)
            _ = try await client.session(.DELETE, sandbox.baseURL + "/api/v1/users/practice-location-provider/7/")

            let response = try await client.session(.GET, sandbox.baseURL + "/sandbox/counters", key: nil)
            #expect(response.status == .ok)
            let object = try await response.sessionObject()
            #expect(object["logins"] as? Int == 1)
            #expect(object["login_failures"] as? Int == 1)
            #expect(object["refreshes"] as? Int == 1)
            #expect(object["jwt_rejections"] as? Int == 1)
            #expect(
                object["routes"] as? [String: Int] == [
                    "POST /api/v1/users/login/": 2,
                    "POST /api/v1/users/token/refresh/": 1,
                    "GET /api/v1/users/provider-documents/": 1,
                    "GET /api/v1/users/providers-list/": 1,
                    "GET /api/v1/users/retrieve-update-provider-ssn/{profile_id}/": 1,
                    "DELETE /api/v1/users/practice-location-provider/{id}/": 1,
                ])
            let swift = await sandbox.counters()
            #expect(swift.logins == 1 && swift.refreshes == 1 && swift.routes.count == 6)

            // Control routes are neither counted nor recorded; counters reset over HTTP too.
            #expect(
                try await client.session(.DELETE, sandbox.baseURL + "/sandbox/counters", key: nil).status == .noContent)
            #expect(await sandbox.counters() == SandboxCounters())
            #expect(await sandbox.recorder.all().count == 7)
        }
    }

    // MARK: Helpers

    struct TestClaims: JWTPayload, Equatable {
        var token_type: String
        var exp: Int
        var iat: Int
        var jti: String
        var user_id: String
        func verify(using algorithm: some JWTAlgorithm) async throws {}
    }

    static func base64URLDecode(_ text: Substring) -> Data? {
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while base64.count % 4 != 0 { base64 += "=" }
        return Data(base64Encoded: base64)
    }

    /// Logs in with the default account and returns the access token (for other suites' JWT routes).
    static func login(_ client: HTTPClient, _ sandbox: SandboxServer) async throws -> String {
        try await client.sessionLogin(sandbox).tokens.access
    }

    func withSession(
        _ options: SandboxOptions = SandboxOptions(apiKey: SandboxSessionTests.apiKey),
        _ body: (SandboxServer, HTTPClient) async throws -> Void
    ) async throws {
        try await withSandboxAndClient(options, body)
    }
}

extension HTTPClient {
    /// Sends a request to a sandbox: the session suite's key unless told otherwise (nil sends none), an optional
    /// bearer token, extra headers, and a JSON or raw body.
    fileprivate func session(
        _ method: HTTPMethod,
        _ url: String,
        key: String? = SandboxSessionTests.apiKey,
        bearer: String? = nil,
        headers: [(String, String)] = [],
        json: [String: Any]? = nil,
        body: [UInt8]? = nil
    ) async throws -> HTTPClientResponse {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let key { request.headers.add(name: "x-api-key", value: key) }
        if let bearer { request.headers.add(name: "Authorization", value: "Bearer \(bearer)") }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let json {
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(Array(try JSONSerialization.data(withJSONObject: json)))
        } else if let body {
            request.body = .bytes(body)
        }
        return try await execute(request, timeout: .seconds(30))
    }

    /// Logs in as the default account (sending the key, as the SDK does): the tokens and the user's id.
    fileprivate func sessionLogin(_ sandbox: SandboxServer) async throws -> (
        tokens: (access: String, refresh: String), userID: String
    ) {
        let response = try await session(
            .POST, sandbox.baseURL + "/api/v1/users/login/",
            json: ["email": SandboxSessionTests.email, "password": SandboxSessionTests.password])
        guard response.status == .ok else { throw SessionTestError.status(response.status.code) }
        let data = try await response.sessionObject()["data"] as? [String: Any]
        guard let jwt = data?["jwt"] as? [String: String], let access = jwt["access"], let refresh = jwt["refresh"],
            let id = data?["id"] as? String
        else { throw SessionTestError.shape }
        return ((access, refresh), id)
    }

    /// Refreshes, expecting success: the new pair.
    fileprivate func sessionRefresh(_ sandbox: SandboxServer, _ refresh: String) async throws -> (
        access: String, refresh: String
    ) {
        let response = try await session(
            .POST, sandbox.baseURL + "/api/v1/users/token/refresh/", key: nil, json: ["refresh": refresh])
        guard response.status == .ok else { throw SessionTestError.status(response.status.code) }
        guard let pair = try await response.sessionObject() as? [String: String], let access = pair["access"],
            let next = pair["refresh"]
        else {
            throw SessionTestError.shape
        }
        return (access, next)
    }
}

enum SessionTestError: Error {
    case status(UInt)
    case shape, notAnObject
}

extension HTTPClientResponse {
    /// The body parsed as a JSON object.
    fileprivate func sessionObject() async throws -> [String: Any] {
        let buffer = try await body.collect(upTo: 16 << 20)
        guard let object = try JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any]
        else {
            throw SessionTestError.notAnObject
        }
        return object
    }
}
