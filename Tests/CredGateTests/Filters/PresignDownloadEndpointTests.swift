import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import CredGate

/// ``PresignDownloadEndpoint``: `GET /credgate/v1/files/download?s3_url=...` becomes the platform's presign call,
/// with a body the endpoint writes itself, and tells the presign cache filter to answer with a redirect.
@Suite struct PresignDownloadEndpointTests {
    static let presignPath = "/api/v1/files/presign_s3_url/"
    let endpoint = PresignDownloadEndpoint(presignPath: PresignDownloadEndpointTests.presignPath)

    private static func download(_ query: String, _ headers: HTTPHeaders = ["host": "gw"]) -> HTTPRequestHead {
        FilterTest.head(.GET, "/credgate/v1/files/download" + query, headers)
    }

    /// The `s3_url` of the query, percent-decoded, with `+` kept as it is (S3 keys may hold it); the last one wins.
    @Test(arguments: [
        ("?s3_url=s3://assured-bucket/docs/a.pdf", "s3://assured-bucket/docs/a.pdf"),
        ("?s3_url=s3%3A%2F%2Fassured-bucket%2Fdocs%2Fa%20b.pdf", "s3://assured-bucket/docs/a b.pdf"),
        ("?s3_url=s3://assured-bucket/docs/a+b.pdf", "s3://assured-bucket/docs/a+b.pdf"),
        ("?s3_url=s3://assured-bucket/docs/a%2Bb.pdf", "s3://assured-bucket/docs/a+b.pdf"),
        ("?x=1&s3_url=s3://assured-bucket/k&y=2", "s3://assured-bucket/k"),
        ("?s3_url=s3://assured-bucket/first&s3_url=s3://assured-bucket/last", "s3://assured-bucket/last"),
        ("?s3_url=s3://assured-bucket/k%3Fv=1%26w", "s3://assured-bucket/k?v=1&w"),
        ("?&&s3_url=s3://assured-bucket/k&", "s3://assured-bucket/k"),
    ])
    func theQueryIsRead(query: String, s3URL: String) {
        #expect(PresignDownloadEndpoint.queryValue("s3_url", in: "/credgate/v1/files/download" + query) == s3URL)
    }

    @Test(arguments: [
        "", "?", "?s3=s3://b/k", "?S3_URL=s3://b/k", "?s3_url", "?s3_url=", "?s3_url=%ZZ", "?xs3_url=s3://b/k",
    ])
    func theQueryHasNoUsableS3URL(query: String) {
        let value = PresignDownloadEndpoint.queryValue("s3_url", in: "/credgate/v1/files/download" + query)
        #expect(value == nil || value == "")
    }

    /// The request becomes `POST <presign path>` with a JSON body of the right length, and the scratch says to
    /// answer with a redirect.
    @Test func theRequestBecomesThePresignCall() throws {
        let loop = EmbeddedEventLoop()
        let client = Self.download(
            "?s3_url=s3://assured-bucket/docs/a+b%20c.pdf",
            ["host": "gw", "accept": "*/*", "transfer-encoding": "chunked"])
        let context = FilterTest.context(client, on: loop)
        var head = client
        #expect(endpoint.decodeHead(&head, context: context).isProceed)
        #expect(head.method == .POST)
        #expect(head.uri == Self.presignPath)
        #expect(head.headers["content-type"] == ["application/json"])
        #expect(!head.headers.contains(name: "transfer-encoding"))
        #expect(context.scratch[PresignDownloadEndpoint.redirectKey] == true)

        // The client sent no body: the endpoint supplies it, whatever came.
        #expect(endpoint.bodyBufferLimit(for: head, context: context) == 16 * 1024)
        var body = ByteBuffer()
        #expect(endpoint.decodeBody(&body, head: &head, context: context).isProceed)
        let expected = #"{"s3_url":"s3://assured-bucket/docs/a+b c.pdf","presigned_url":""}"#
        #expect(FilterTest.text(body) == expected)
        #expect(head.headers["content-length"] == [String(expected.utf8.count)])
        var ignored = ByteBuffer(string: "whatever the client sent")
        #expect(endpoint.decodeBody(&ignored, head: &head, context: context).isProceed)
        #expect(FilterTest.text(ignored) == expected)
    }

    /// The value is quoted as JSON: a quote or a backslash in it cannot change the body's shape.
    @Test func theValueIsQuotedAsJSON() throws {
        let loop = EmbeddedEventLoop()
        let client = Self.download(#"?s3_url=s3://b/k%22,%22presigned_url%22:%22x%5C"#)
        let context = FilterTest.context(client, on: loop)
        var head = client
        #expect(endpoint.decodeHead(&head, context: context).isProceed)
        var body = ByteBuffer()
        _ = endpoint.decodeBody(&body, head: &head, context: context)
        let object = try #require(FilterTest.json(body))
        #expect(object["s3_url"] as? String == #"s3://b/k","presigned_url":"x\"#)
        #expect(object["presigned_url"] as? String == "")
        #expect(object.count == 2)
    }

    @Test(arguments: ["", "?s3_url=", "?s3_url", "?s3_url=%ZZ", "?file=s3://assured-bucket/k"])
    func withoutAnS3URLItIsAProblem(query: String) {
        let loop = EmbeddedEventLoop()
        let client = Self.download(query)
        let context = FilterTest.context(client, on: loop)
        var head = client
        let result = endpoint.decodeHead(&head, context: context)
        let members = FilterTest.expectProblem(result.stopResponse, status: 422, code: "invalid-presign-request")
        #expect((members["detail"] as? String)?.contains("?s3_url=s3://bucket/key") == true)
        #expect(members["title"] as? String == "Invalid download request")
        #expect(context.scratch[PresignDownloadEndpoint.redirectKey] == nil)
        #expect(head.method == .GET)
    }

    // MARK: - With the presign route's filters behind it

    /// As the route compiler builds it: the endpoint in front of the presign route's chain, whose cache filter
    /// validates the supplied body and answers with a redirect, from the platform's answer and then from the cache.
    @Test func withThePresignRouteTheAnswerIsARedirect() throws {
        let loop = EmbeddedEventLoop()
        let cache = PresignCache(now: { PresignBotocoreVectors.signedAt })
        let chain = FilterChain([
            endpoint, StripClientCredentials(credentialHeaders: ["x-api-key"]),
            APIKeyFilter(header: "x-api-key", value: Secret("k")),
            PresignCacheFilter(cache: cache, identity: "assured/alice"),
        ])
        let url = PresignBotocoreVectors.sigV4(expires: 3600)

        func request() -> (FilterContext, HTTPRequestHead, FilterHeadResult) {
            let client = Self.download("?s3_url=s3%3A%2F%2Fassured-bucket%2Fdocs%2Fa.pdf")
            let context = FilterTest.context(client, on: loop)
            var head = client
            let (atHead, _) = chain.runHead(from: 0, head: &head, context: context)
            #expect(atHead.isProceed)
            #expect(chain.bodyBufferLimit(for: head, context: context) == 16 * 1024)
            var body = ByteBuffer()
            let (result, _) = chain.runBody(from: 0, body: &body, head: &head, context: context)
            return (context, head, result)
        }

        let (context, head, result) = request()
        #expect(result.isProceed, "a miss: the presign call goes to the platform")
        #expect(head.headers["x-api-key"] == ["k"])
        #expect(chain.responseBufferLimit(for: FilterTest.responseHead(.ok), context: context) == 64 * 1024)
        var answerHead = FilterTest.responseHead(.ok, ["content-type": "application/json"])
        var answer = ByteBuffer(string: #"{"presigned_url": "\#(url)"}"#)
        let redirect = try #require(chain.encodeResponse(&answerHead, body: &answer, context: context).replacement)
        #expect(redirect.status == .found)
        #expect(redirect.headers["location"] == [url])
        #expect(redirect.headers["x-cache"] == ["MISS"])

        let (_, _, again) = request()
        let hit = try #require(again.stopResponse)
        #expect(hit.status == .found)
        #expect(hit.headers["location"] == [url])
        #expect(hit.headers["x-cache"] == ["HIT"])
        #expect(cache.statistics.fetches == 1)
    }

    /// An `s3_url` that is there but not an S3 URI is the cache filter's 422, with its reason.
    @Test func withThePresignRouteABadS3URLIsRefused() throws {
        let loop = EmbeddedEventLoop()
        let chain = FilterChain([endpoint, PresignCacheFilter(cache: PresignCache(), identity: "i")])
        let client = Self.download("?s3_url=https://example.com/a.pdf")
        let context = FilterTest.context(client, on: loop)
        var head = client
        #expect(chain.runHead(from: 0, head: &head, context: context).0.isProceed)
        var body = ByteBuffer()
        let (result, index) = chain.runBody(from: 0, body: &body, head: &head, context: context)
        let members = FilterTest.expectProblem(result.stopResponse, status: 422, code: "invalid-presign-request")
        #expect((members["detail"] as? String)?.contains("'s3_url' is not a valid S3 URI") == true)
        #expect(index == 1)
    }
}
