import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import CredGate

/// ``SSNEncryptionFilter``: a plain SSN in the body is checked and encrypted with the session token the JWT filter
/// injected on this very request, as the platform expects (decrypted back here with ``SSNCipher``).
@Suite struct SSNEncryptionFilterTests {
    static let token = "eyJhbGciOiJIUzI1NiJ9.real-session-token.sig"
    let filter = SSNEncryptionFilter(session: assuredSessionConfig(), placeholders: nil)

    /// The request as the upstream will get it: the session token already injected by the JWT filter.
    private static func upstreamHead(
        _ method: HTTPMethod = .PATCH, token: String? = SSNEncryptionFilterTests.token,
        contentType: String = "application/json"
    ) -> HTTPRequestHead {
        var headers: HTTPHeaders = ["host": "gw", "content-type": contentType]
        if let token { headers.add(name: "Authorization", value: "Bearer \(token)") }
        return FilterTest.head(method, "/api/v1/users/providers/p1/", headers)
    }

    private struct Outcome {
        var result: FilterHeadResult
        var body: ByteBuffer
        var head: HTTPRequestHead
    }

    private func run(
        _ json: String, filter: SSNEncryptionFilter? = nil, head: HTTPRequestHead = upstreamHead(),
        client: HTTPRequestHead? = nil
    ) -> Outcome {
        let loop = EmbeddedEventLoop()
        var body = ByteBuffer(string: json)
        var head = head
        let context = FilterTest.context(
            client ?? FilterTest.head(head.method, head.uri, ["content-type": "application/json"]), on: loop)
        let result = (filter ?? self.filter).decodeBody(&body, head: &head, context: context)
        return Outcome(result: result, body: body, head: head)
    }

    private func encryptedSSN(_ outcome: Outcome) throws -> String {
        let object = try #require(FilterTest.json(outcome.body))
        return try #require(object["ssn"] as? String)
    }

    @Test(arguments: ["123-45-6789", "123456789", "123 45 6789", " 123-45-6789 ", "12-34-56-789"])
    func aValidSSNIsEncryptedWithTheInjectedToken(ssn: String) throws {
        let outcome = run(#"{"ssn": "\#(ssn)", "first_name": "Ada", "npi": "1234567893"}"#)
        #expect(outcome.result.isProceed)
        let encrypted = try encryptedSSN(outcome)
        #expect(encrypted != ssn)
        #expect(SSNCipher.decrypt(encrypted, token: Self.token) == "123456789")
        #expect(SSNCipher.decrypt(encrypted, token: "another-token") != "123456789")
        // The platform's form: base64 of a 16-byte IV and the nine encrypted digits.
        #expect(Data(base64Encoded: encrypted)?.count == 16 + 9)
        // Every other field is kept.
        let object = try #require(FilterTest.json(outcome.body))
        #expect(object["first_name"] as? String == "Ada")
        #expect(object["npi"] as? String == "1234567893")
        #expect(object.count == 3)
        #expect(outcome.head.headers["content-type"] == ["application/json"])
    }

    /// A fresh IV every time: the same SSN never gives the same ciphertext twice.
    @Test func eachEncryptionHasItsOwnIV() throws {
        let a = try encryptedSSN(run(#"{"ssn": "123-45-6789"}"#))
        let b = try encryptedSSN(run(#"{"ssn": "123-45-6789"}"#))
        #expect(a != b)
        #expect(SSNCipher.decrypt(a, token: Self.token) == SSNCipher.decrypt(b, token: Self.token))
    }

    /// The rewritten body is JSON again, whatever the client's content type said.
    @Test func theRewrittenBodyIsLabelledJSON() throws {
        let outcome = run(#"{"ssn": "123456789"}"#, head: Self.upstreamHead(contentType: "text/plain"))
        #expect(outcome.result.isProceed)
        #expect(outcome.head.headers["content-type"] == ["application/json"])
    }

    /// A replay after a 401 runs the filter again with the new token: the SSN is encrypted with it.
    @Test func aReplayEncryptsWithTheNewToken() throws {
        let first = run(#"{"ssn": "123-45-6789"}"#)
        let replay = run(#"{"ssn": "123-45-6789"}"#, head: Self.upstreamHead(token: "the-new-token"))
        #expect(SSNCipher.decrypt(try encryptedSSN(first), token: Self.token) == "123456789")
        #expect(SSNCipher.decrypt(try encryptedSSN(replay), token: "the-new-token") == "123456789")
    }

    @Test func theConfiguredTokenFormatIsRead() throws {
        var config = assuredSessionConfig()
        config.header = "X-Session"
        config.format = "JWT <{token}>"
        let custom = SSNEncryptionFilter(session: config, placeholders: nil)
        let head = FilterTest.head(.POST, "/api/ssn/", ["x-session": "JWT <tok-42>"])
        let outcome = run(#"{"ssn": "987-65-4321"}"#, filter: custom, head: head)
        #expect(outcome.result.isProceed)
        #expect(SSNCipher.decrypt(try encryptedSSN(outcome), token: "tok-42") == "987654321")
    }

    @Test(arguments: [
        ("not json", "The body must be a JSON object"),
        ("", "The body must be a JSON object"),
        ("[\"123-45-6789\"]", "The body must be a JSON object"),
        ("{}", "The body must be a JSON object"),
        (#"{"SSN": "123-45-6789"}"#, "The body must be a JSON object"),
        (#"{"ssn": 123456789}"#, "The body must be a JSON object"),
        (#"{"ssn": null}"#, "The body must be a JSON object"),
        (#"{"ssn": "12-345-678"}"#, "must be nine digits"),
        (#"{"ssn": "1234567890"}"#, "must be nine digits"),
        (#"{"ssn": ""}"#, "must be nine digits"),
        (#"{"ssn": "123-45-678x"}"#, "must be nine digits"),
        (#"{"ssn": "abc"}"#, "must be nine digits"),
        (#"{"ssn": "１２３４５６７８９"}"#, "must be nine digits"),
    ])
    func badBodiesAreRefusedWith422(body: String, why: String) throws {
        let outcome = run(body)
        let members = FilterTest.expectProblem(outcome.result.stopResponse, status: 422, code: "invalid-ssn")
        let detail = try #require(members["detail"] as? String)
        #expect(detail.contains(why))
        #expect(detail.hasSuffix("Nothing was sent to the platform."))
        #expect(FilterTest.text(outcome.body) == body, "the body is left alone")
    }

    /// Ciphertext the platform would take as it is (not one of credgate's placeholder's) passes unchanged.
    @Test func existingCiphertextPassesUnchanged() throws {
        let ciphertext = try SSNCipher.encrypt("123456789", token: "the-sdk-already-had-a-real-token")
        let json = #"{"ssn": "\#(ciphertext)"}"#
        let outcome = run(json)
        #expect(outcome.result.isProceed)
        #expect(FilterTest.text(outcome.body) == json)
    }

    @Test(arguments: [nil, "Basic dXNlcjpwdw==", "Bearer ", "bearer lower-case-prefix"] as [String?])
    func withoutAnInjectedTokenItIsA500(authorization: String?) {
        var head = Self.upstreamHead(token: nil)
        if let authorization { head.headers.add(name: "Authorization", value: authorization) }
        let outcome = run(#"{"ssn": "123-45-6789"}"#, head: head)
        FilterTest.expectProblem(outcome.result.stopResponse, status: 500, code: "ssn-no-session")
    }

    /// An SDK that logged in through credgate's placeholder login encrypts with the placeholder token: credgate
    /// decrypts with it and encrypts again with the real session's.
    @Test func placeholderCiphertextIsReKeyed() throws {
        let placeholders = PlaceholderTokens()
        let placeholder = placeholders.mint(type: "access")
        let filter = SSNEncryptionFilter(session: assuredSessionConfig(), placeholders: placeholders)
        let sdkCiphertext = try SSNCipher.encrypt("123456789", token: placeholder)
        let client = FilterTest.head(.PATCH, "/api/v1/users/providers/p1/", ["authorization": "Bearer \(placeholder)"])
        let outcome = run(#"{"ssn": "\#(sdkCiphertext)"}"#, filter: filter, client: client)
        #expect(outcome.result.isProceed)
        let rekeyed = try encryptedSSN(outcome)
        #expect(rekeyed != sdkCiphertext)
        #expect(SSNCipher.decrypt(rekeyed, token: Self.token) == "123456789")

        // Without the placeholder set (placeholder login off), the same body passes as it is.
        let untouched = run(#"{"ssn": "\#(sdkCiphertext)"}"#, client: client)
        #expect(untouched.result.isProceed)
        #expect(try encryptedSSN(untouched) == sdkCiphertext)
    }

    @Test func placeholderCiphertextOfSomethingElseIsRefused() throws {
        let placeholders = PlaceholderTokens()
        let placeholder = placeholders.mint(type: "access")
        let filter = SSNEncryptionFilter(session: assuredSessionConfig(), placeholders: placeholders)
        let client = FilterTest.head(.PATCH, "/api/v1/users/providers/p1/", ["authorization": "Bearer \(placeholder)"])
        let notAnSSN = try SSNCipher.encrypt("hello world, not digits", token: placeholder)
        let outcome = run(#"{"ssn": "\#(notAnSSN)"}"#, filter: filter, client: client)
        let members = FilterTest.expectProblem(outcome.result.stopResponse, status: 422, code: "invalid-ssn")
        #expect((members["detail"] as? String)?.contains("does not hold nine digits") == true)
    }

    /// Bodies that may carry an SSN are held whole (64 KiB at most); others stream.
    @Test func bodyBufferLimit() {
        let loop = EmbeddedEventLoop()
        for method in [HTTPMethod.POST, .PUT, .PATCH] {
            let head = FilterTest.head(method, "/api/ssn/")
            #expect(filter.bodyBufferLimit(for: head, context: FilterTest.context(head, on: loop)) == 64 * 1024)
        }
        for method in [HTTPMethod.GET, .DELETE, .HEAD, .OPTIONS] {
            let head = FilterTest.head(method, "/api/ssn/")
            #expect(filter.bodyBufferLimit(for: head, context: FilterTest.context(head, on: loop)) == nil)
        }
        // In a chain, the transport holds the largest limit any body filter asks for.
        let post = FilterTest.head(.POST, "/api/ssn/")
        #expect(
            FilterChain([filter]).bodyBufferLimit(for: post, context: FilterTest.context(post, on: loop)) == 64 * 1024)
    }
}
