import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import CredGate

private let gatewayKey = "sk-APIKEYFILTER-secret-7f3a"

/// ``APIKeyFilter``: writes the route's static key into its header, whatever the client sent there.
@Suite struct APIKeyFilterTests {
    let filter = APIKeyFilter(header: "x-api-key", value: Secret(gatewayKey))

    @Test func injectsTheKeyWhenTheClientSentNone() {
        let loop = EmbeddedEventLoop()
        let client = FilterTest.head(.GET, "/api/v1/users/", ["host": "gw", "accept": "application/json"])
        var head = client
        let result = filter.decodeHead(&head, context: FilterTest.context(client, on: loop))
        #expect(result.isProceed)
        #expect(head.headers["x-api-key"] == [gatewayKey])
        // Nothing else changes.
        #expect(head.headers["host"] == ["gw"])
        #expect(head.headers["accept"] == ["application/json"])
        #expect(head.uri == "/api/v1/users/")
        #expect(head.method == .GET)
    }

    /// A client's own key, in any case and however many times, is replaced by exactly one value: the gateway's.
    @Test(arguments: [
        [("x-api-key", "client-key")],
        [("X-API-KEY", "client-key")],
        [("X-Api-Key", "one"), ("x-api-key", "two")],
        [("x-api-key", gatewayKey + "-but-not-quite")],
    ])
    func replacesTheClientsValue(sent: [(String, String)]) {
        let loop = EmbeddedEventLoop()
        var headers: HTTPHeaders = ["host": "gw"]
        for (name, value) in sent { headers.add(name: name, value: value) }
        let client = FilterTest.head(.POST, "/api/v1/x/", headers)
        var head = client
        #expect(filter.decodeHead(&head, context: FilterTest.context(client, on: loop)).isProceed)
        #expect(head.headers["x-api-key"] == [gatewayKey])
        #expect(head.headers.filter { $0.name.lowercased() == "x-api-key" }.count == 1)
        // The context keeps the head as the client sent it.
        #expect(FilterTest.context(client, on: loop).clientHead.headers["x-api-key"] == sent.map(\.1))
    }

    @Test func writesTheConfiguredHeaderName() {
        let loop = EmbeddedEventLoop()
        let custom = APIKeyFilter(header: "Api-Token", value: Secret("t-123"))
        let client = FilterTest.head(.GET, "/", ["api-token": "mine", "x-api-key": "unrelated"])
        var head = client
        #expect(custom.decodeHead(&head, context: FilterTest.context(client, on: loop)).isProceed)
        #expect(head.headers["Api-Token"] == ["t-123"])
        #expect(head.headers["x-api-key"] == ["unrelated"], "only the filter's own header is written")
        #expect(custom.header == "Api-Token")
    }

    /// The same filter serves every request: a second request gets the key again, not a stale value.
    @Test func everyRequestGetsTheKey() {
        let loop = EmbeddedEventLoop()
        for i in 0..<3 {
            let client = FilterTest.head(.GET, "/api/\(i)", ["x-api-key": "client-\(i)"])
            var head = client
            #expect(filter.decodeHead(&head, context: FilterTest.context(client, on: loop)).isProceed)
            #expect(head.headers["x-api-key"] == [gatewayKey])
        }
    }

    /// The key is a ``Secret``: no description, reflection or dump of the filter shows it.
    @Test func theSecretNeverShowsInTheFiltersDescriptions() {
        var dumped = ""
        dump(filter, to: &dumped)
        for text in [
            String(describing: filter), String(reflecting: filter), "\(filter)", dumped,
            String(describing: [filter] as [any RequestFilter]), String(describing: FilterChain([filter]).filters),
        ] {
            #expect(!text.contains(gatewayKey), "\(text)")
            #expect(!text.contains("APIKEYFILTER"), "\(text)")
        }
        #expect(String(describing: filter).contains("<redacted>"))
    }
}
