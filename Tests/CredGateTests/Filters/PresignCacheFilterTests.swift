import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import CredGate

/// A wall clock that moves only when the test says so.
private final class PresignFilterClock: Sendable {
    private let current = NIOLockedValueBox(PresignBotocoreVectors.signedAt)
    var now: Date { current.withLockedValue { $0 } }
    func advance(_ seconds: TimeInterval) { current.withLockedValue { $0 = $0.addingTimeInterval(seconds) } }
}

private struct PlatformWentAway: Error {}

/// ``PresignCacheFilter`` with a ``PresignCache`` on a hand-moved wall clock and every request's context on one
/// `EmbeddedEventLoop`: the filter's wake-ups of waiting requests run when the test runs the loop.
///
/// Every test ends with no request left waiting (a waiting request's promise must be fulfilled, and the loop
/// must have no task left when it goes).
@Suite struct PresignCacheFilterTests {
    private final class Rig {
        let loop = EmbeddedEventLoop()
        let clock = PresignFilterClock()
        let cache: PresignCache
        let filter: PresignCacheFilter

        init(identity: String = "assured/alice") {
            let clock = self.clock
            cache = PresignCache(now: { clock.now })
            filter = PresignCacheFilter(cache: cache, identity: identity)
        }

        /// A presign request's context (a new request each time).
        func request(redirect: Bool = false) -> FilterContext {
            let context = FilterTest.context(
                FilterTest.head(.POST, "/api/v1/files/presign_s3_url/", ["content-type": "application/json"]), on: loop)
            if redirect { context.scratch[PresignDownloadEndpoint.redirectKey] = true }
            return context
        }

        func decode(
            _ context: FilterContext, _ json: String = PresignCacheFilterTests.requestBody,
            filter: PresignCacheFilter? = nil
        )
            -> FilterHeadResult
        {
            var body = ByteBuffer(string: json)
            var head = context.clientHead
            return (filter ?? self.filter).decodeBody(&body, head: &head, context: context)
        }

        /// The platform's answer reaching the leading request's filter.
        func respond(
            _ context: FilterContext, status: HTTPResponseStatus = .ok, body: String = PresignCacheFilterTests.answer
        )
            -> (ResponseFilterResult, HTTPResponseHead, ByteBuffer)
        {
            var head = FilterTest.responseHead(
                status, ["content-type": "application/json", "content-length": "\(body.utf8.count)"])
            var buffer = ByteBuffer(string: body)
            let result = filter.encodeResponse(&head, body: &buffer, context: context)
            return (result, head, buffer)
        }

        func state(_ context: FilterContext) -> PresignCacheFilter.State? {
            context.scratch[PresignCacheFilter.stateKey]
        }
    }

    static let requestBody = #"{"s3_url": "s3://assured-bucket/docs/a.pdf", "presigned_url": ""}"#
    static let url = PresignBotocoreVectors.sigV4(expires: 3600)
    static let answer = #"{"presigned_url": "\#(url)"}"#

    /// Whether `future` is fulfilled now (its callback runs at once on the embedded loop when it is).
    private static func isDone(_ future: EventLoopFuture<Void>) -> Bool {
        var done = false
        future.whenComplete { _ in done = true }
        return done
    }

    @Test func theRequestIsHeldWholeAndTheAnswerOnlyWhenLeading() {
        let rig = Rig()
        let context = rig.request()
        #expect(rig.filter.bodyBufferLimit(for: context.clientHead, context: context) == 16 * 1024)
        #expect(rig.filter.responseBufferLimit(for: FilterTest.responseHead(.ok), context: context) == nil)
    }

    @Test(arguments: [
        ("not json", "The body is not a JSON object."),
        ("", "The body is not a JSON object."),
        (#"["s3://assured-bucket/a.pdf"]"#, "The body is not a JSON object."),
        (#""s3://assured-bucket/a.pdf""#, "The body is not a JSON object."),
        (#"{"s3_url": "s3://assured-bucket/a.pdf", "expires": 60}"#, "fields the presign call does not take: expires."),
        (#"{"s3_url": "s3://assured-bucket/a.pdf", "presigned_url": 5}"#, "'presigned_url' must be a string"),
        (#"{"presigned_url": ""}"#, "The body has no 's3_url'."),
        (#"{"s3_url": 5, "presigned_url": ""}"#, "'s3_url' must be a string like s3://bucket/key."),
        (#"{"s3_url": "https://assured-bucket.s3.amazonaws.com/a.pdf"}"#, "'s3_url' is not a valid S3 URI"),
        (#"{"s3_url": "s3://assured-bucket/"}"#, "'s3_url' is not a valid S3 URI"),
        (#"{"s3_url": "s3://Assured_Bucket/a.pdf"}"#, "'s3_url' is not a valid S3 URI"),
    ])
    func anInvalidRequestIsRefusedWith422(body: String, why: String) throws {
        let rig = Rig()
        let context = rig.request()
        let result = rig.decode(context, body)
        let members = FilterTest.expectProblem(result.stopResponse, status: 422, code: "invalid-presign-request")
        #expect((members["detail"] as? String)?.contains(why) == true, "\(members["detail"] ?? "")")
        #expect(rig.state(context) == nil)
        #expect(rig.cache.statistics == PresignCache.Statistics(), "the cache was not consulted")
    }

    @Test(arguments: [
        #"{"s3_url": "s3://assured-bucket/docs/a.pdf"}"#,
        #"{"s3_url": "s3://assured-bucket/docs/a.pdf", "presigned_url": null}"#,
    ])
    func theSDKsOptionalFieldMayBeLeftOut(body: String) throws {
        let rig = Rig()
        let context = rig.request()
        #expect(rig.decode(context, body).isProceed)
        _ = rig.respond(context)
    }

    /// A miss goes to the platform holding the ticket; its answer is stored (`x-cache: MISS` and how long it may be
    /// kept); the next identical request is answered from the cache with its age, without a platform call.
    @Test func aMissLeadsTheCallThenTheNextRequestHits() throws {
        let rig = Rig()
        let first = rig.request()
        #expect(rig.decode(first).isProceed)
        let state = try #require(rig.state(first))
        #expect(state.ticket != nil)
        #expect(state.key.object.description == "s3://assured-bucket/docs/a.pdf")
        #expect(!state.redirect)
        #expect(rig.filter.responseBufferLimit(for: FilterTest.responseHead(.ok), context: first) == 64 * 1024)

        let (result, head, body) = rig.respond(first)
        #expect(result.isProceed)
        #expect(head.headers["x-cache"] == ["MISS"])
        #expect(head.headers["cache-control"] == ["private, max-age=3240"]) // an hour less the 6-minute margin
        #expect(FilterTest.text(body) == Self.answer, "the platform's answer is passed on as it is")
        #expect(state.ticket == nil)
        #expect(rig.cache.count == 1)
        #expect(rig.filter.responseBufferLimit(for: FilterTest.responseHead(.ok), context: first) == nil)

        rig.clock.advance(600)
        let second = rig.request()
        let hit = try #require(rig.decode(second).stopResponse)
        #expect(hit.status == .ok)
        #expect(hit.headers["x-cache"] == ["HIT"])
        #expect(hit.headers["age"] == ["600"])
        #expect(hit.headers["cache-control"] == ["private, max-age=2640"])
        #expect(hit.headers["content-type"] == ["application/json"])
        #expect(FilterTest.text(hit) == Self.answer)
        #expect(rig.filter.responseBufferLimit(for: FilterTest.responseHead(.ok), context: second) == nil)

        let stats = rig.cache.statistics
        #expect(stats.fetches == 1)
        #expect(stats.hits == 1)
        #expect(stats.stored == 1)
    }

    /// Another identity (another user's credentials) never gets this user's URL.
    @Test func anotherIdentityMisses() {
        let rig = Rig()
        let first = rig.request()
        #expect(rig.decode(first).isProceed)
        _ = rig.respond(first)
        let bob = PresignCacheFilter(cache: rig.cache, identity: "assured/bob")
        let other = rig.request()
        #expect(rig.decode(other, filter: bob).isProceed)
        #expect(rig.cache.statistics.fetches == 2)
    }

    /// An identical request arriving while the call is in progress waits for it (`.retryAfter`), and is answered
    /// with its result when the leading request's answer comes: one platform call.
    @Test func aJoinedRequestWaitsAndIsAnsweredWhenTheLeaderCompletes() throws {
        let rig = Rig()
        let leader = rig.request()
        #expect(rig.decode(leader).isProceed)
        let waiter = rig.request()
        let future = try #require(rig.decode(waiter).retryFuture)
        rig.loop.run()
        #expect(!Self.isDone(future))
        #expect(rig.filter.responseBufferLimit(for: FilterTest.responseHead(.ok), context: waiter) == nil)

        _ = rig.respond(leader)
        rig.loop.run()
        #expect(Self.isDone(future))

        // The transport calls the filter again: the stored answer.
        let answer = try #require(rig.decode(waiter).stopResponse)
        #expect(answer.status == .ok)
        #expect(answer.headers["x-cache"] == ["HIT"])
        #expect(answer.headers["age"] == ["0"])
        #expect(FilterTest.text(answer) == Self.answer)
        let stats = rig.cache.statistics
        #expect(stats.fetches == 1)
        #expect(stats.joined == 1)
    }

    /// An error is passed on and never stored: the waiting request gets the same error (not cacheable), and the
    /// next request asks the platform again.
    @Test(arguments: [
        (HTTPResponseStatus.internalServerError, #"{"detail": "S3 is down"}"#),
        (.forbidden, #"{"detail": "no access"}"#),
        (.ok, #"{"presigned_url": ""}"#),
        (.ok, #"{"presigned_url": "https://assured-bucket.s3.amazonaws.com/a.pdf"}"#),
    ])
    func errorsAreNotCached(status: HTTPResponseStatus, platformBody: String) throws {
        let rig = Rig()
        let leader = rig.request()
        #expect(rig.decode(leader).isProceed)
        let waiter = rig.request()
        let future = try #require(rig.decode(waiter).retryFuture)

        let (result, head, body) = rig.respond(leader, status: status, body: platformBody)
        #expect(result.isProceed)
        #expect(head.status == status)
        #expect(head.headers["x-cache"] == ["MISS"])
        #expect(!head.headers["cache-control"].contains { $0.contains("max-age") })
        #expect(FilterTest.text(body) == platformBody)
        #expect(rig.cache.count == 0)

        rig.loop.run()
        #expect(Self.isDone(future))
        let shared = try #require(rig.decode(waiter).stopResponse)
        #expect(shared.status == status)
        #expect(shared.headers["x-cache"] == ["MISS"])
        #expect(shared.headers["cache-control"] == ["no-store"])
        #expect(FilterTest.text(shared) == platformBody)

        let next = rig.request()
        #expect(rig.decode(next).isProceed, "nothing was stored: the next request asks the platform")
        #expect(rig.cache.statistics.fetches == 2)
        _ = rig.respond(next)
    }

    /// A replay of the leading request (after a 401) goes on leading the same call.
    @Test func aReplayOfTheLeaderKeepsLeading() throws {
        let rig = Rig()
        let leader = rig.request()
        #expect(rig.decode(leader).isProceed)
        let ticket = try #require(rig.state(leader)?.ticket)
        let replay = FilterTest.context(leader.clientHead, on: rig.loop, attempt: 1, scratch: leader.scratch)
        #expect(rig.decode(replay).isProceed)
        #expect(rig.state(replay)?.ticket === ticket)
        #expect(rig.cache.statistics.fetches == 1)
        _ = rig.respond(replay)
        #expect(rig.cache.count == 1)
    }

    /// The leading request went away without an answer: the waiting request claims again and leads a call itself.
    @Test func aWaiterLeadsWhenTheLeaderGoesAway() throws {
        let rig = Rig()
        let leader = rig.request()
        #expect(rig.decode(leader).isProceed)
        let waiter = rig.request()
        let future = try #require(rig.decode(waiter).retryFuture)

        rig.state(leader)?.ticket = nil // the request ended: its ticket is dropped unanswered
        rig.loop.run()
        #expect(Self.isDone(future))
        #expect(rig.decode(waiter).isProceed)
        #expect(rig.state(waiter)?.ticket != nil)
        _ = rig.respond(waiter)
        #expect(rig.cache.count == 1)
        #expect(rig.cache.statistics.fetches == 2)
    }

    /// The call a request waited for failed outright: 502 `presign-failed`.
    @Test func aFailedSharedCallIs502() throws {
        let rig = Rig()
        let leader = rig.request()
        #expect(rig.decode(leader).isProceed)
        let waiter = rig.request()
        let future = try #require(rig.decode(waiter).retryFuture)
        rig.state(leader)?.ticket?.fail(PlatformWentAway())
        rig.loop.run()
        #expect(Self.isDone(future))
        FilterTest.expectProblem(rig.decode(waiter).stopResponse, status: 502, code: "presign-failed")
        #expect(rig.cache.count == 0)
    }

    /// For `GET /credgate/v1/files/download` the answer is a redirect to the URL, from the platform's answer and
    /// then from the cache; a plain presign request for the same file gets the cached JSON.
    @Test func downloadsAreAnsweredWithARedirect() throws {
        let rig = Rig()
        let first = rig.request(redirect: true)
        #expect(rig.decode(first).isProceed)
        #expect(rig.state(first)?.redirect == true)
        let (result, _, _) = rig.respond(first)
        let redirect = try #require(result.replacement)
        #expect(redirect.status == .found)
        #expect(redirect.headers["location"] == [Self.url])
        #expect(redirect.headers["x-cache"] == ["MISS"])
        #expect(redirect.headers["cache-control"] == ["private, max-age=3240"])
        #expect(redirect.body.readableBytes == 0)

        rig.clock.advance(60)
        let second = try #require(rig.decode(rig.request(redirect: true)).stopResponse)
        #expect(second.status == .found)
        #expect(second.headers["location"] == [Self.url])
        #expect(second.headers["x-cache"] == ["HIT"])
        #expect(second.headers["age"] == ["60"])
        #expect(second.headers["cache-control"] == ["private, max-age=3180"])

        let json = try #require(rig.decode(rig.request()).stopResponse)
        #expect(json.status == .ok)
        #expect(FilterTest.text(json) == Self.answer)
    }

    /// A download whose presign call fails gets the platform's error, not a redirect to nowhere.
    @Test func aFailedDownloadPassesThePlatformsError() throws {
        let rig = Rig()
        let first = rig.request(redirect: true)
        #expect(rig.decode(first).isProceed)
        let (result, head, _) = rig.respond(first, status: .notFound, body: #"{"detail": "Not found."}"#)
        #expect(result.isProceed)
        #expect(head.status == .notFound)
        #expect(head.headers["x-cache"] == ["MISS"])
    }

    // MARK: - The plain form the fast path reads

    private static func plain(_ body: String) -> S3URI? {
        Array(body.utf8).withUnsafeBytes { PresignCacheFilter.plainRequestObject($0) }
    }

    /// Whatever the fast path reads on the bytes, the full path's JSON reader reads as the same object (so a hit
    /// on one is a hit on the other).
    @Test(arguments: [
        #"{"s3_url": "s3://assured-bucket/docs/a.pdf", "presigned_url": ""}"#,
        #"{"s3_url":"s3://assured-bucket/docs/a.pdf","presigned_url":""}"#,
        #"{"s3_url": "s3://assured-bucket/docs/a.pdf"}"#,
        " \r\n\t{ \"s3_url\" :\n\"s3://assured-bucket/a+b=c~d!.pdf\" , \"presigned_url\" : \"\" }\n ",
    ])
    func thePlainFormIsReadAsTheFullPathReadsIt(body: String) throws {
        let fast = try #require(Self.plain(body), "not read: \(body)")
        let full = try PresignCacheFilter.parse(ByteBuffer(string: body)).get()
        #expect(fast == full)
    }

    /// Anything else, valid or not, is left to the full path (which reads it with Foundation and explains).
    @Test(arguments: [
        #"{"presigned_url": "", "s3_url": "s3://assured-bucket/a.pdf"}"#,
        #"{"s3_url": "s3:\/\/assured-bucket\/a.pdf"}"#,
        #"{"s3_url": "s3://assured-bucket/caf\u00e9.pdf"}"#,
        #"{"s3_url": "s3://assured-bucket/café.pdf"}"#,
        #"{"s3_url": "s3://assured-bucket/a.pdf", "presigned_url": null}"#,
        #"{"s3_url": "s3://assured-bucket/a.pdf", "presigned_url": "x"}"#,
        #"{"s3_url": "s3://assured-bucket/a.pdf", "expires": 60}"#,
        #"{"s3_url": "s3://assured-bucket/a.pdf", "s3_url": "s3://assured-bucket/b.pdf"}"#,
        #"{"s3_url": "s3://assured-bucket/a.pdf",}"#,
        #"{"s3_url": "s3://assured-bucket/a.pdf"}x"#,
        #"{"s3_url": "s3://assured-bucket/a.pdf"} {}"#,
        #"{"s3_url": "s3://assured-bucket/a.pdf""#,
        #"{"s3_url": "https://assured-bucket.s3.amazonaws.com/a.pdf"}"#,
        #"{"s3_url": "s3://assured-bucket/"}"#,
        #"{"s3_url": 5}"#,
        #"{"s3_url": "s3://assured-bucket/a b.pdf"}"#,
        "{\"s3_url\": \"s3://assured-bucket/a\u{1}.pdf\"}",
        "", "{}", "not json",
    ])
    func anyOtherBodyIsTheFullPaths(body: String) {
        #expect(Self.plain(body) == nil, "\(body)")
    }
}
