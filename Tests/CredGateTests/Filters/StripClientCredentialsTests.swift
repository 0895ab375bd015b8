import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import CredGate

/// ``StripClientCredentials``: whatever credentials the client sent are gone before any credential filter runs.
@Suite struct StripClientCredentialsTests {
    /// As the route compiler builds it: the headers every configured credential writes.
    let strip = StripClientCredentials(credentialHeaders: ["X-Api-Key", "x-session-token"])

    private func run(_ filter: StripClientCredentials, _ headers: HTTPHeaders) -> HTTPRequestHead {
        let loop = EmbeddedEventLoop()
        let client = FilterTest.head(.POST, "/api/v1/x/", headers)
        var head = client
        #expect(filter.decodeHead(&head, context: FilterTest.context(client, on: loop)).isProceed)
        return head
    }

    @Test func namesAreLowerCasedAndAlwaysIncludeAuthorization() {
        #expect(strip.names == ["authorization", "proxy-authorization", "x-api-key", "x-session-token"])
        let bare = StripClientCredentials(credentialHeaders: [])
        #expect(bare.names == ["authorization", "proxy-authorization"])
        let repeated = StripClientCredentials(credentialHeaders: ["Authorization", "AUTHORIZATION", "x-a", "X-A"])
        #expect(repeated.names == ["authorization", "proxy-authorization", "x-a"])
    }

    /// `Authorization` and `Proxy-Authorization` go even on a route with no credential at all.
    @Test func authorizationAndProxyAuthorizationAreAlwaysRemoved() {
        let bare = StripClientCredentials(credentialHeaders: [])
        let head = run(
            bare,
            [
                "host": "gw", "Authorization": "Bearer client-jwt", "Proxy-Authorization": "Basic dXNlcjpwdw==",
                "x-api-key": "kept: no credential writes it",
            ])
        #expect(!head.headers.contains(name: "authorization"))
        #expect(!head.headers.contains(name: "proxy-authorization"))
        #expect(head.headers["x-api-key"] == ["kept: no credential writes it"])
        #expect(head.headers["host"] == ["gw"])
    }

    /// Every credential header, in any case, every copy of it.
    @Test(arguments: [
        "authorization", "Authorization", "AUTHORIZATION", "aUtHoRiZaTiOn", "proxy-authorization",
        "Proxy-Authorization",
        "PROXY-AUTHORIZATION", "x-api-key", "X-API-KEY", "X-Api-Key", "x-API-key", "x-session-token", "X-Session-Token",
    ])
    func everyCredentialHeaderIsRemovedInAnyCase(name: String) {
        var headers: HTTPHeaders = ["host": "gw", "accept": "*/*"]
        headers.add(name: name, value: "smuggled-1")
        headers.add(name: name.uppercased(), value: "smuggled-2")
        headers.add(name: name.lowercased(), value: "smuggled-3")
        let head = run(strip, headers)
        #expect(!head.headers.contains(name: name))
        #expect(!head.headers.contains { $0.value.hasPrefix("smuggled") })
        #expect(head.headers.map(\.name) == ["host", "accept"])
    }

    @Test func allOfThemAtOnceAndNothingElse() {
        let head = run(
            strip,
            [
                "Host": "gw", "X-API-KEY": "a", "Authorization": "Bearer b", "X-Request-ID": "r",
                "proxy-authorization": "c",
                "x-session-token": "d", "X-Api-Key-Extra": "not a credential header", "Cookie": "sid=1",
            ])
        #expect(head.headers.map(\.name) == ["Host", "X-Request-ID", "X-Api-Key-Extra", "Cookie"])
        #expect(head.headers["x-api-key-extra"] == ["not a credential header"])
    }

    /// The usual case: nothing to strip, the head is left exactly as it was (order and case of the headers).
    @Test func aHeadWithoutCredentialsIsUntouched() {
        let headers: HTTPHeaders = [
            "Host": "gw", "Content-Type": "application/json", "X-Trace": "1", "content-length": "2",
        ]
        let head = run(strip, headers)
        #expect(head.headers.map(\.name) == headers.map(\.name))
        #expect(head.headers.map(\.value) == headers.map(\.value))
    }

    /// In a chain, stripping runs before the credentials: the client's key is replaced by the gateway's, and its
    /// `Authorization` does not reach the upstream.
    @Test func inTheChainTheGatewaysKeyReplacesTheClients() {
        let loop = EmbeddedEventLoop()
        let chain = FilterChain([strip, APIKeyFilter(header: "x-api-key", value: Secret("gateway-key"))])
        let client = FilterTest.head(
            .GET, "/api/", ["x-api-key": "client-key", "X-API-Key": "second", "authorization": "Bearer x"])
        var head = client
        let (result, index) = chain.runHead(from: 0, head: &head, context: FilterTest.context(client, on: loop))
        #expect(result.isProceed)
        #expect(index == 2)
        #expect(head.headers["x-api-key"] == ["gateway-key"])
        #expect(!head.headers.contains(name: "authorization"))
    }
}
