import Foundation
import NIOCore
import NIOHTTP1

/// The `presign_cache` transform on `POST .../presign_s3_url/`: checks the request (`{"s3_url": "s3://bucket/key",
/// "presigned_url": ""}`), answers from the ``PresignCache`` while a URL has its safety margin left, and otherwise
/// lets exactly one request per file go to the platform while identical ones wait for its answer.
///
/// A hit is answered on the event loop with no hop. On a miss the request that leads the platform call goes
/// through the data path like any other (credentials, replay after a 401, timeouts); the filter sees its answer
/// whole (``responseBufferLimit(for:context:)``) and reports it to the cache, which wakes the waiting requests.
struct PresignCacheFilter: BodyFilter, ResponseFilter {
    let cache: PresignCache
    /// Who the platform answers as (the route's credentials, hashed): one user's URL is never served to another.
    let identity: String

    /// A presign request is a few hundred bytes.
    static let requestLimit = 16 * 1024
    /// The platform's answer is under 2 KiB; larger ones pass through, uncached.
    static let answerLimit = 64 * 1024
    static let stateKey = ScratchKey<State>("presign.state")

    /// One request's dealings with the cache.
    final class State: @unchecked Sendable {
        let key: PresignCacheKey
        /// Answer with a redirect to the URL instead of the JSON (`GET /credgate/v1/files/download`).
        let redirect: Bool
        /// Set while this request leads the platform call for its key.
        var ticket: PresignCacheTicket?
        /// The result of the call this request waited for.
        var joined: Result<PresignCacheFetched, any Error>?
        var wakeUp: EventLoopPromise<Void>?

        init(key: PresignCacheKey, redirect: Bool) {
            self.key = key
            self.redirect = redirect
        }
    }

    func bodyBufferLimit(for head: HTTPRequestHead, context: FilterContext) -> Int? { Self.requestLimit }

    func decodeBody(_ body: inout ByteBuffer, head: inout HTTPRequestHead, context: FilterContext) -> FilterHeadResult {
        let state: State
        if let existing = context.scratch[Self.stateKey] {
            state = existing
        } else {
            switch Self.parse(body) {
            case .failure(let error):
                return .problem(error, context)
            case .success(let object):
                let redirect = context.scratch[PresignDownloadEndpoint.redirectKey] != nil
                state = State(key: PresignCacheKey(object: object, identity: identity), redirect: redirect)
                context.scratch[Self.stateKey] = state
            }
        }
        // A replay after a 401 goes on leading the call it leads.
        if state.ticket != nil { return .proceed }
        if let joined = state.joined {
            state.joined = nil
            switch joined {
            case .success(let fetched):
                if fetched.isStored, let hit = cache.lookup(key: state.key) {
                    return .stop(Self.answer(hit, state: state))
                }
                return .stop(Self.answer(fetched, state: state))
            case .failure(let error as PresignCacheError) where error == .abandoned:
                break // the leading request went away: claim again
            case .failure:
                return .problem(.presignFailed, context)
            }
        }
        let loop = context.eventLoop
        let claim = cache.claim(key: state.key) { result in
            loop.execute {
                state.joined = result
                let promise = state.wakeUp
                state.wakeUp = nil
                promise?.succeed(())
            }
        }
        switch claim {
        case .hit(let hit):
            return .stop(Self.answer(hit, state: state))
        case .lead(let ticket):
            state.ticket = ticket
            return .proceed
        case .joined:
            let promise = loop.makePromise(of: Void.self)
            state.wakeUp = promise
            return .retryAfter(promise.futureResult)
        }
    }

    func responseBufferLimit(for head: HTTPResponseHead, context: FilterContext) -> Int? {
        context.scratch[Self.stateKey]?.ticket != nil ? Self.answerLimit : nil
    }

    func encodeResponse(_ head: inout HTTPResponseHead, body: inout ByteBuffer, context: FilterContext)
        -> ResponseFilterResult
    {
        guard let state = context.scratch[Self.stateKey], let ticket = state.ticket else { return .proceed }
        state.ticket = nil
        let fetched = ticket.complete(status: Int(head.status.code), body: Array(body.readableBytesView))
        if state.redirect, fetched.presignedURL != nil {
            return .respondWith(Self.answer(fetched, state: state))
        }
        head.headers.replaceOrAdd(name: "x-cache", value: "MISS")
        if let seconds = fetched.secondsLeft {
            head.headers.replaceOrAdd(name: "cache-control", value: "private, max-age=\(seconds)")
        }
        return .proceed
    }

    // MARK: - Answers

    /// A cached answer: the stored JSON (or a redirect), with its age and how long it may still be used.
    static func answer(_ hit: PresignCacheHit, state: State) -> LocalResponse {
        answer(hit, redirect: state.redirect)
    }

    /// ``answer(_:state:)`` without a request's state (the fast path's hits, never a redirect, use it too).
    static func answer(_ hit: PresignCacheHit, redirect: Bool) -> LocalResponse {
        var headers: HTTPHeaders = [
            "x-cache": "HIT", "age": String(hit.age), "cache-control": "private, max-age=\(hit.secondsLeft)",
        ]
        if redirect { return Self.redirect(to: hit.presignedURL, headers: headers) }
        headers.add(name: "content-type", value: "application/json")
        return LocalResponse(status: .ok, headers: headers, body: ByteBuffer(bytes: hit.body))
    }

    /// The answer of a platform call made for this request or shared with it.
    static func answer(_ fetched: PresignCacheFetched, state: State) -> LocalResponse {
        var headers: HTTPHeaders = ["x-cache": "MISS"]
        if let seconds = fetched.secondsLeft {
            headers.add(name: "cache-control", value: "private, max-age=\(seconds)")
        }
        if state.redirect, let url = fetched.presignedURL, fetched.status == 200 {
            return redirect(to: url, headers: headers)
        }
        headers.add(name: "content-type", value: "application/json")
        if fetched.secondsLeft == nil { headers.add(name: "cache-control", value: "no-store") }
        return LocalResponse(
            status: HTTPResponseStatus(statusCode: fetched.status), headers: headers,
            body: ByteBuffer(bytes: fetched.body))
    }

    static func redirect(to url: String, headers: HTTPHeaders) -> LocalResponse {
        var headers = headers
        headers.add(name: "location", value: url)
        return LocalResponse(status: .found, headers: headers)
    }

    // MARK: - Checking the request

    /// The object of a presign body in the plain form the SDK sends, read on the bytes for the fast path's cache
    /// hits (``FastPathHandler/answerFromCache(_:_:route:plan:presign:target:)``), which must not pay for
    /// Foundation's JSON reader: `{"s3_url": "<s3 URI>"}` with an optional `"presigned_url": ""` after it, JSON
    /// white space anywhere between tokens. The URI's characters are printable ASCII without `"` or `\`, so the
    /// string is the one ``parse(_:)`` reads and the key is the same. nil for anything else, valid or not: the full
    /// path then reads the body with ``parse(_:)`` (and explains what is wrong with it).
    static func plainRequestObject(_ body: UnsafeRawBufferPointer) -> S3URI? {
        var i = 0
        func skipSpace() {
            while i < body.count, body[i] == 0x20 || body[i] == 0x09 || body[i] == 0x0A || body[i] == 0x0D { i += 1 }
        }
        func literal(_ text: StaticString) -> Bool {
            skipSpace()
            let n = text.utf8CodeUnitCount
            guard i + n <= body.count else { return false }
            for k in 0..<n where body[i + k] != text.utf8Start[k] { return false }
            i += n
            return true
        }
        guard literal("{"), literal(#""s3_url""#), literal(":"), literal(#"""#) else { return nil }
        let start = i
        while i < body.count, body[i] >= 0x20, body[i] < 0x7F, body[i] != UInt8(ascii: "\""),
            body[i] != UInt8(ascii: "\\")
        {
            i += 1
        }
        guard i < body.count, body[i] == UInt8(ascii: "\"") else { return nil }
        let uri = String(decoding: UnsafeRawBufferPointer(rebasing: body[start..<i]), as: UTF8.self)
        i += 1
        if literal(",") {
            guard literal(#""presigned_url""#), literal(":"), literal(#""""#) else { return nil }
        }
        guard literal("}") else { return nil }
        skipSpace()
        guard i == body.count else { return nil }
        return try? S3URI(parsing: uri)
    }

    /// The `s3_url` of a presign request body, or the 422 that explains what is wrong with it.
    static func parse(_ body: ByteBuffer) -> Result<S3URI, GatewayError> {
        func invalid(_ detail: String) -> Result<S3URI, GatewayError> {
            .failure(.invalidPresignRequest(detail: detail))
        }
        let example = #"Send {"s3_url": "s3://bucket/key", "presigned_url": ""}."#
        guard
            let json = try? JSONSerialization.jsonObject(
                with: Data(body.readableBytesView), options: [.fragmentsAllowed]),
            let object = json as? [String: Any]
        else { return invalid("The body is not a JSON object. \(example)") }
        let unknown = object.keys.filter { $0 != "s3_url" && $0 != "presigned_url" }.sorted()
        if !unknown.isEmpty {
            return invalid(
                "The body has fields the presign call does not take: \(unknown.joined(separator: ", ")). \(example)")
        }
        if let presigned = object["presigned_url"], !(presigned is String), !(presigned is NSNull) {
            return invalid("'presigned_url' must be a string (the SDK sends \"\").")
        }
        guard let raw = object["s3_url"] else { return invalid("The body has no 's3_url'. \(example)") }
        guard let string = raw as? String else { return invalid("'s3_url' must be a string like s3://bucket/key.") }
        do throws(S3URI.Problem) {
            return .success(try S3URI(parsing: string))
        } catch {
            return invalid("'s3_url' is not a valid S3 URI: \(error.description)")
        }
    }
}
