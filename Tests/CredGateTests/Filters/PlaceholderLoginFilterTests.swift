import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import CredGate

/// ``PlaceholderLoginFilter``: the platform's login, answered by credgate itself with placeholder tokens of the
/// login answer's shape; the request never goes to the platform, with or without a body.
@Suite struct PlaceholderLoginFilterTests {
    let placeholders = PlaceholderTokens()

    private func filter(refresh: Bool = true) -> PlaceholderLoginFilter {
        var config = assuredSessionConfig()
        config.placeholderLogin = true
        if !refresh { config.login.refreshTokenPath = nil }
        return PlaceholderLoginFilter(config: config, placeholders: placeholders)
    }

    /// The SDK's login request, as it sends it.
    private static let loginBody =
        #"{"email": "someone@example.com", "password": "the SDK's own password", "remember": true}"#

    /// Checks the local answer: 200 JSON with placeholder tokens at the configured paths, never the real ones.
    @discardableResult
    private func expectPlaceholderAnswer(
        _ response: LocalResponse?, refresh: Bool = true,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> [String: Any] {
        let response = try #require(response, "the login was not answered locally", sourceLocation: sourceLocation)
        #expect(response.status == .ok, sourceLocation: sourceLocation)
        #expect(response.headers["content-type"] == ["application/json"], sourceLocation: sourceLocation)
        #expect(response.headers["x-credgate-placeholder"] == ["true"], sourceLocation: sourceLocation)
        let root = try #require(FilterTest.json(response), sourceLocation: sourceLocation)
        #expect(
            (root["msg"] as? String)?.contains("credgate placeholder session") == true, sourceLocation: sourceLocation)
        let jwt = try #require(
            (root["data"] as? [String: Any])?["jwt"] as? [String: Any], sourceLocation: sourceLocation)
        let access = try #require(jwt["access"] as? String, sourceLocation: sourceLocation)
        #expect(placeholders.isPlaceholder(access), sourceLocation: sourceLocation)
        #expect(Self.claims(access)?["token_type"] as? String == "access", sourceLocation: sourceLocation)
        #expect(Self.claims(access)?["credgate_placeholder"] as? Bool == true, sourceLocation: sourceLocation)
        if refresh {
            let refreshToken = try #require(jwt["refresh"] as? String, sourceLocation: sourceLocation)
            #expect(placeholders.isPlaceholder(refreshToken), sourceLocation: sourceLocation)
            #expect(Self.claims(refreshToken)?["token_type"] as? String == "refresh", sourceLocation: sourceLocation)
            #expect(refreshToken != access, sourceLocation: sourceLocation)
        } else {
            #expect(jwt["refresh"] == nil, sourceLocation: sourceLocation)
        }
        // Another process's placeholders (another key) are not ours.
        #expect(!PlaceholderTokens().isPlaceholder(access), sourceLocation: sourceLocation)
        return root
    }

    private static func claims(_ jwt: String) -> [String: Any]? {
        let parts = jwt.split(separator: ".")
        guard parts.count == 3, let payload = PlaceholderTokens.base64urlDecode(parts[1]) else { return nil }
        return (try? JSONSerialization.jsonObject(with: payload)) as? [String: Any]
    }

    /// Without a body, the head alone is answered.
    @Test(arguments: [HTTPHeaders(), ["content-length": "0"]] as [HTTPHeaders])
    func aLoginWithoutABodyIsAnsweredAtTheHead(headers: HTTPHeaders) throws {
        let loop = EmbeddedEventLoop()
        let client = FilterTest.head(.POST, "/api/v1/users/login/", headers)
        var head = client
        let result = filter().decodeHead(&head, context: FilterTest.context(client, on: loop))
        try expectPlaceholderAnswer(result.stopResponse)
    }

    /// With a body, the head passes so the body is read (the connection stays usable), and the body is answered:
    /// the request is never forwarded.
    @Test(
        arguments: [["content-length": "\(loginBody.utf8.count)"], ["transfer-encoding": "chunked"]] as [HTTPHeaders])
    func aLoginWithABodyIsAnsweredOnceTheBodyIsRead(headers: HTTPHeaders) throws {
        let loop = EmbeddedEventLoop()
        let filter = filter()
        var client = FilterTest.head(.POST, "/api/v1/users/login/", headers)
        client.headers.add(name: "content-type", value: "application/json")
        let context = FilterTest.context(client, on: loop)
        var head = client
        #expect(filter.decodeHead(&head, context: context).isProceed)
        #expect(filter.bodyBufferLimit(for: head, context: context) == 64 * 1024)
        var body = ByteBuffer(string: Self.loginBody)
        let result = filter.decodeBody(&body, head: &head, context: context)
        let root = try expectPlaceholderAnswer(result.stopResponse)
        // The client's password is not echoed.
        #expect(!FilterTest.text(try #require(result.stopResponse)).contains("the SDK's own password"))
        #expect(root["extra_data"] is [String: Any])
    }

    /// Whatever the body holds (even nothing usable), the answer is the same and nothing proceeds.
    @Test(arguments: ["", "not json", #"{"email": 1}"#, String(repeating: "x", count: 60_000)])
    func anyBodyIsAnsweredLocally(body: String) throws {
        let loop = EmbeddedEventLoop()
        let filter = filter()
        let client = FilterTest.head(.POST, "/api/v1/users/login/", ["content-length": "\(body.utf8.count)"])
        let context = FilterTest.context(client, on: loop)
        var head = client
        var buffer = ByteBuffer(string: body)
        let result = filter.decodeBody(&buffer, head: &head, context: context)
        try expectPlaceholderAnswer(result.stopResponse)
    }

    /// Without a refresh token path, the answer has only the access token.
    @Test func noRefreshPathNoRefreshToken() throws {
        let loop = EmbeddedEventLoop()
        let client = FilterTest.head(.POST, "/api/v1/users/login/")
        var head = client
        try expectPlaceholderAnswer(
            filter(refresh: false).decodeHead(&head, context: FilterTest.context(client, on: loop)).stopResponse,
            refresh: false)
    }

    /// The configured token paths shape the answer (another platform's login).
    @Test func otherTokenPathsShapeTheAnswer() throws {
        var config = assuredSessionConfig()
        config.login.accessTokenPath = "token"
        config.login.refreshTokenPath = "auth.refresh.value"
        let filter = PlaceholderLoginFilter(config: config, placeholders: placeholders)
        let loop = EmbeddedEventLoop()
        let client = FilterTest.head(.POST, "/login")
        var head = client
        let response = try #require(
            filter.decodeHead(&head, context: FilterTest.context(client, on: loop)).stopResponse)
        let root = try #require(FilterTest.json(response))
        #expect(placeholders.isPlaceholder(try #require(root["token"] as? String)))
        let refresh = ((root["auth"] as? [String: Any])?["refresh"] as? [String: Any])?["value"] as? String
        #expect(placeholders.isPlaceholder(try #require(refresh)))
        #expect(root["data"] == nil)
    }

    /// Every login gets fresh placeholders.
    @Test func eachLoginGetsItsOwnTokens() throws {
        let loop = EmbeddedEventLoop()
        let client = FilterTest.head(.POST, "/api/v1/users/login/")
        var accesses: Set<String> = []
        for _ in 0..<3 {
            var head = client
            let response = try #require(
                filter().decodeHead(&head, context: FilterTest.context(client, on: loop)).stopResponse)
            let jwt = (FilterTest.json(response)?["data"] as? [String: Any])?["jwt"] as? [String: Any]
            accesses.insert(try #require(jwt?["access"] as? String))
        }
        #expect(accesses.count == 3)
    }

    /// As the route compiler builds the login route (stripping first): the chain stops at the head or at the body,
    /// so nothing reaches the platform.
    @Test func theChainNeverForwards() throws {
        let loop = EmbeddedEventLoop()
        let chain = FilterChain([StripClientCredentials(credentialHeaders: ["x-api-key"]), filter()])
        let bare = FilterTest.head(.POST, "/api/v1/users/login/", ["authorization": "Bearer old"])
        var head = bare
        let (atHead, index) = chain.runHead(from: 0, head: &head, context: FilterTest.context(bare, on: loop))
        try expectPlaceholderAnswer(atHead.stopResponse)
        #expect(index == 1)

        let withBody = FilterTest.head(
            .POST, "/api/v1/users/login/", ["content-length": "\(Self.loginBody.utf8.count)"])
        let context = FilterTest.context(withBody, on: loop)
        head = withBody
        #expect(chain.runHead(from: 0, head: &head, context: context).0.isProceed)
        #expect(chain.bodyBufferLimit(for: head, context: context) == 64 * 1024)
        var body = ByteBuffer(string: Self.loginBody)
        try expectPlaceholderAnswer(chain.runBody(from: 0, body: &body, head: &head, context: context).0.stopResponse)
        #expect(!chain.mayReplay && !chain.inspectsResponses && !chain.hasBodyStage)
    }
}
