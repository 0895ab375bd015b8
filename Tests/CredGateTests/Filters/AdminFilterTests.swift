import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import CredGate

/// ``AdminFilter``: the reserved `/credgate/` space as a route whose one filter always answers; nothing there is
/// ever forwarded. (The readiness and status bodies belong to the admin endpoints' own tests.)
@Suite struct AdminFilterTests {
    private func answer(_ method: HTTPMethod, _ uri: String, admin: AdminEndpoints = AdminEndpoints()) throws
        -> LocalResponse
    {
        let loop = EmbeddedEventLoop()
        let filter = AdminFilter(admin: admin)
        let client = FilterTest.head(method, uri, ["host": "gw"])
        var head = client
        let result = filter.decodeHead(&head, context: FilterTest.context(client, on: loop))
        return try #require(result.stopResponse, "an admin request must be answered, never forwarded")
    }

    @Test(arguments: [
        (HTTPMethod.GET, "/credgate/healthz"), (.HEAD, "/credgate/healthz"), (.GET, "/credgate/liveness"),
        (.GET, "/credgate/startup"), (.GET, "/credgate/healthz?verbose=1"),
    ])
    func healthIsAnsweredOK(method: HTTPMethod, uri: String) throws {
        let response = try answer(method, uri)
        #expect(response.status == .ok)
        #expect(response.headers["content-type"] == ["application/json"])
        #expect(response.headers["cache-control"] == ["no-store"])
        #expect(FilterTest.text(response) == #"{"status":"ok"}"#)
    }

    /// Anything else under `/credgate/` is 404 `admin-not-found`, naming the path (without the query).
    @Test(arguments: [
        (HTTPMethod.GET, "/credgate/nothing", "/credgate/nothing"),
        (.GET, "/credgate/", "/credgate/"),
        (.GET, "/credgate", "/credgate"),
        (.POST, "/credgate/healthz", "/credgate/healthz"),
        (.PUT, "/credgate/status", "/credgate/status"),
        (.GET, "/credgate/v1/unknown?token=abc", "/credgate/v1/unknown"),
        (.DELETE, "/credgate/v1/cache/presign", "/credgate/v1/cache/presign"),
    ])
    func anythingElseIsAdminNotFound(method: HTTPMethod, uri: String, path: String) throws {
        let response = try answer(method, uri)
        let members = FilterTest.expectProblem(response, status: 404, code: "admin-not-found")
        let detail = try #require(members["detail"] as? String)
        #expect(detail.contains("There is no admin endpoint \(path)."))
        #expect(detail.contains("never forwarded"))
        #expect(!detail.contains("token=abc"))
    }

    /// With a presign cache configured, `DELETE /credgate/v1/cache/presign` empties it and says how many went.
    @Test func deletingThePresignCacheEmptiesIt() throws {
        let cache = PresignCache(now: { PresignBotocoreVectors.signedAt })
        let key = PresignCacheKey(object: try S3URI(parsing: "s3://assured-bucket/docs/a.pdf"), identity: "i")
        guard case .lead(let ticket) = cache.claim(key: key, whenJoinedCallCompletes: { _ in }) else {
            Issue.record("expected to lead the call")
            return
        }
        ticket.complete(
            status: 200, body: Array(#"{"presigned_url": "\#(PresignBotocoreVectors.sigV4(expires: 3600))"}"#.utf8))
        #expect(cache.count == 1)
        let response = try answer(.DELETE, "/credgate/v1/cache/presign", admin: AdminEndpoints(presignCache: cache))
        #expect(response.status == .ok)
        #expect(FilterTest.text(response) == #"{"removed":1}"#)
        #expect(cache.count == 0)
    }

    /// The filter answers from the head as it reaches it, in the request's own ID.
    @Test func theAnswerCarriesTheRequestID() throws {
        let loop = EmbeddedEventLoop()
        let client = FilterTest.head(.GET, "/credgate/missing")
        var head = client
        let context = FilterTest.context(client, on: loop, requestID: "0123456789abcdef")
        let response = try #require(
            AdminFilter(admin: AdminEndpoints()).decodeHead(&head, context: context).stopResponse)
        FilterTest.expectProblem(response, status: 404, code: "admin-not-found", requestID: "0123456789abcdef")
    }

    /// As the route compiler builds the reserved route: a chain of the admin filter alone, which never forwards,
    /// never reads a body and never sees an answer.
    @Test func theReservedRouteNeverForwards() throws {
        let loop = EmbeddedEventLoop()
        let chain = FilterChain([AdminFilter(admin: AdminEndpoints())])
        #expect(!chain.hasBodyStage && !chain.inspectsResponses && !chain.mayReplay)
        for uri in ["/credgate/healthz", "/credgate/nope"] {
            let client = FilterTest.head(.GET, uri)
            var head = client
            let context = FilterTest.context(client, on: loop)
            let (result, index) = chain.runHead(from: 0, head: &head, context: context)
            #expect(result.stopResponse != nil)
            #expect(index == 0)
            #expect(chain.bodyBufferLimit(for: head, context: context) == nil)
        }
    }
}
