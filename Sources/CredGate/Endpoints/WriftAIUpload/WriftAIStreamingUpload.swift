import AsyncHTTPClient
import NIOCore
import NIOHTTP1

/// A one-call WriftAI upload whose size the head declares (`Content-Length`): the body goes to the storage part
/// by part *as the client sends it*, through the transport's body-sink hook (``RequestBodySink``), instead of
/// being spooled whole first as a chunked body must be (``WriftAIUploadStage``).
///
/// 1. The first bytes (``FileType/sniffLength``) are held and checked against the type the name claims: a `.pdf`
///    that is a PNG is answered 415 and nothing leaves.
/// 2. The flow's first call (`POST /uploads` `{size, mime_type}`, or SDK 0.28's `POST /files/urls`) goes through
///    the route that serves it (a ``FollowUpCall``: the route's credentials). The client is not read meanwhile.
/// 3. Each part is a `PUT` to its presigned URL with the exact `Content-Length`, the file's type and no
///    `Authorization`, whose body is the client's bytes as they arrive (AsyncHTTPClient's `StreamWriter`: a
///    chunk is handed on once the previous one was written, and the client waits for that, so memory holds a
///    chunk per part in flight). At most `part_concurrency` parts are open at once: a part waiting for the
///    storage's answer keeps its slot, and the client waits for a free one.
/// 4. Every byte also goes to an encrypted spool file (``UploadSpoolFile``) as it passes, so a part the storage
///    refused or lost is sent again from there (up to `part_retries` more times) without the client resending;
///    a part the storage holds gives its disk space back at once (a punched hole).
/// 5. At the body's end, once every part is stored, the three-step flow completes (`POST /uploads/{id}/complete`
///    with the ETags in order) and the client gets `201`. A part that failed every retry answers the client at
///    once with `upload-incomplete` (the rest of its body is dropped): never a false success.
///
/// Confined to the connection's event loop: the transport calls it there, and every callback hops back to it.
final class WriftAIStreamingUpload: RequestBodySink, @unchecked Sendable {
    struct Settings: Sendable {
        var filename: String
        var mimeType: String
        /// The exact size, from `Content-Length`.
        var size: Int
        var flow: WriftAIUploadConfig.Flow
        /// The first call's path as a follow-up call sends it (the upstream's mount taken off).
        var path: String
        var partConcurrency: Int
        var partRetries: Int
        var spoolDirectory: String
        var requestID: String
    }

    /// Where the parts go, from the platform's answer to the first call.
    private struct Plan {
        /// The upload's id (three steps), `nil` for the one-step flow.
        let id: String?
        let urls: [String]
        let partSize: Int
        /// The one-step flow's download URL, known from the first answer.
        let downloadURL: String?
        var partCount: Int { urls.count }
    }

    private enum Phase {
        /// Holding the first bytes until the type check can be made.
        case sniffing
        /// The first call is out; the client waits.
        case starting
        case streaming(Plan)
        /// Answered or cancelled: nothing more is done.
        case over
    }

    /// One part's `PUT`: the live attempt fed with the client's bytes, then any retries from the spool.
    /// Confined to the upload's event loop, like the upload itself.
    private final class Part: @unchecked Sendable {
        let index: Int
        let offset: Int
        let length: Int
        /// Its presigned URL; whether the storage's answer must carry an `ETag` (the three-step flow).
        let url: String
        let requireETag: Bool
        /// The live request's body writer, once AsyncHTTPClient asks for the body.
        let writer: EventLoopPromise<HTTPClient.Body.StreamWriter>
        /// Completed when the part's last byte was written (AsyncHTTPClient then ends the request).
        let bodyDone: EventLoopPromise<Void>
        var fed = 0
        var live: HTTPClient.Task<HTTPClient.Response>?
        /// Why the live attempt failed; the part is then sent again from the spool once it is all there.
        var liveFailure: PresignedPut.Failure?
        var retry: Task<Void, Never>?

        init(index: Int, offset: Int, length: Int, url: String, requireETag: Bool, loop: any EventLoop) {
            self.index = index
            self.offset = offset
            self.length = length
            self.url = url
            self.requireETag = requireETag
            self.writer = loop.makePromise()
            self.bodyDone = loop.makePromise()
        }
    }

    /// A part failed every retry: the upload is answered with this.
    private struct Doomed: Error {}

    let settings: Settings
    let loop: any EventLoop
    private let client: HTTPClient
    /// The route's calls: the first one, and the three-step flow's complete.
    private let call: FollowUpCall
    private var phase = Phase.sniffing
    private var firstBytes: [UInt8] = []
    /// Bytes that came before the plan was known (the sniffed ones), fed to the parts once it is.
    private var held: [ByteBuffer] = []
    private var file: UploadSpoolFile?
    /// Bytes received (and spooled) so far; bytes handed to the parts so far.
    private var received = 0
    private var fed = 0
    /// Parts opened and not yet settled, by index.
    private var open: [Int: Part] = [:]
    private var results: [Int: Result<String, PresignedPut.Failure>] = [:]
    /// A part waiting for a free slot.
    private var slotWaiter: EventLoopPromise<Void>?
    private var doomed: LocalResponse?
    /// ``finish()``'s answer, once every part is settled.
    private var finished: EventLoopPromise<LocalResponse>?
    private var startTask: Task<Void, Never>?

    init(settings: Settings, call: FollowUpCall, client: HTTPClient, loop: any EventLoop) {
        self.settings = settings
        self.call = call
        self.client = client
        self.loop = loop
    }

    // MARK: - The body

    func write(_ chunk: ByteBuffer) -> EventLoopFuture<BodySinkResult> {
        if case .over = phase { return loop.makeSucceededFuture(.more) }
        if let doomed { return answer(doomed) }
        guard chunk.readableBytes > 0 else { return loop.makeSucceededFuture(.more) }
        do {
            if file == nil { file = try UploadSpoolFile(directory: settings.spoolDirectory) }
            try file!.append(chunk)
        } catch {
            return answer(
                .problem(
                    .spoolFailed(reason: (error as? IOError)?.description ?? "an I/O error"),
                    requestID: settings.requestID))
        }
        received += chunk.readableBytes
        retryPartsNowSpooled()
        switch phase {
        case .sniffing:
            held.append(chunk)
            firstBytes += chunk.readableBytesView.prefix(FileType.sniffLength - firstBytes.count)
            guard firstBytes.count >= FileType.sniffLength || received >= settings.size else {
                return loop.makeSucceededFuture(.more)
            }
            if let refusal = WriftAIUploadStage.contentRefusal(filename: settings.filename, firstBytes: firstBytes) {
                return answer(.problem(refusal.gatewayError, requestID: settings.requestID))
            }
            phase = .starting
            return startUpload()
        case .starting:
            held.append(chunk) // cannot happen: the transport waits for the write that started the call
            return loop.makeSucceededFuture(.more)
        case .streaming(let plan):
            return feed(chunk, plan)
        case .over:
            return loop.makeSucceededFuture(.more)
        }
    }

    func finish() -> EventLoopFuture<LocalResponse> {
        if let doomed { return settle(doomed) }
        guard case .streaming(let plan) = phase, received == settings.size else {
            // Cannot happen with Content-Length framing (a short body ends with the connection, not with an end).
            return settle(
                .problem(
                    .uploadIncomplete(
                        UploadIncomplete(
                            uploadID: nil,
                            reason:
                                "the body ended after \(received) of the \(settings.size) bytes its Content-Length declared."
                        )),
                    requestID: settings.requestID))
        }
        let promise = loop.makePromise(of: LocalResponse.self)
        finished = promise
        if open.isEmpty { conclude(plan) }
        return promise.futureResult
    }

    func cancel() {
        // An answer still awaited gets one (a promise left pending is a leak NIO traps in debug builds).
        if let finished {
            self.finished = nil
            finished.succeed(
                doomed
                    ?? .problem(
                        .uploadIncomplete(UploadIncomplete(uploadID: nil, reason: "the upload was cancelled.")),
                        requestID: settings.requestID))
        }
        if case .over = phase { return }
        phase = .over
        startTask?.cancel()
        for part in open.values {
            part.live?.cancel()
            part.retry?.cancel()
            part.writer.fail(CancellationError())
            part.bodyDone.fail(CancellationError())
        }
        open = [:]
        slotWaiter?.fail(CancellationError())
        slotWaiter = nil
        // The spool file closes when the last reader (a retry being cancelled) lets it go.
        file = nil
    }

    // MARK: - The first call

    private func startUpload() -> EventLoopFuture<BodySinkResult> {
        let (call, settings, loop) = (call, settings, loop)
        let json = WriftAIUploadStart.requestBody(
            flow: settings.flow, filename: settings.filename, size: settings.size, mimeType: settings.mimeType)
        let promise = loop.makePromise(of: FollowUpCall.Answer.self)
        startTask = Task {
            do {
                promise.succeed(
                    try await call.send(
                        method: .POST, path: settings.path, json: json, requestID: settings.requestID, on: loop))
            } catch {
                promise.fail(error)
            }
        }
        return promise.futureResult.hop(to: loop).flatMap { [self] answer in
            guard case .starting = phase else { return loop.makeSucceededFuture(.more) } // cancelled meanwhile
            guard (200..<300).contains(answer.status) else {
                // The platform refused to start (a 401, a 413, a 429): its own answer, as the spooled flow passes it on.
                var headers = HTTPHeaders()
                headers.add(name: "content-type", value: answer.contentType ?? "application/json")
                headers.add(name: "cache-control", value: "no-store")
                return self.answer(
                    LocalResponse(
                        status: HTTPResponseStatus(statusCode: answer.status), headers: headers,
                        body: ByteBuffer(bytes: answer.body)))
            }
            guard let plan = self.plan(answer) else { return self.answer(self.noUsableStart(status: answer.status)) }
            if plan.id != nil, (settings.size + plan.partSize - 1) / plan.partSize != plan.urls.count {
                return self.answer(
                    incomplete(
                        id: plan.id, partCount: plan.urls.count,
                        reason:
                            "the platform listed \(plan.urls.count) part URLs for \(settings.size) bytes in parts of \(plan.partSize) bytes."
                    ))
            }
            phase = .streaming(plan)
            let bytes = held
            held = []
            var chain = loop.makeSucceededFuture(BodySinkResult.more)
            for chunk in bytes {
                chain = chain.flatMap { result in
                    guard case .more = result else { return self.loop.makeSucceededFuture(result) }
                    return self.feed(chunk, plan)
                }
            }
            return chain
        }.flatMapError { [self] error in
            guard case .starting = phase else { return loop.makeSucceededFuture(.more) }
            return self.answer(
                incomplete(
                    id: nil, partCount: 0,
                    reason:
                        "the platform's first upload call (POST \(settings.path)) got no answer (\(FollowUpCall.describe(error)))."
                ))
        }
    }

    private func plan(_ answer: FollowUpCall.Answer) -> Plan? {
        switch WriftAIUploadStart.parse(ByteBuffer(bytes: answer.body), flow: settings.flow) {
        case .parts(let id, let urls, let partSize)?:
            return Plan(id: id, urls: urls, partSize: partSize, downloadURL: nil)
        case .single(let uploadURL, let downloadURL)?:
            return Plan(id: nil, urls: [uploadURL], partSize: settings.size, downloadURL: downloadURL)
        case nil:
            return nil
        }
    }

    private func noUsableStart(status: Int) -> LocalResponse {
        let wanted = settings.flow == .threeStep ? "id, urls and part_size" : "upload_url and download_url"
        return .problem(
            .uploadIncomplete(
                UploadIncomplete(
                    uploadID: nil, reason: "the platform's answer to POST \(settings.path) has no usable \(wanted).",
                    platformStatus: status)),
            requestID: settings.requestID)
    }

    // MARK: - Parts

    /// Hands `chunk` to the parts it belongs to, in order; the future completes when every slice was written.
    private func feed(_ chunk: ByteBuffer, _ plan: Plan) -> EventLoopFuture<BodySinkResult> {
        var chunk = chunk
        var chain = loop.makeSucceededVoidFuture()
        while chunk.readableBytes > 0 {
            let index = fed / plan.partSize
            let partEnd = min((index + 1) * plan.partSize, settings.size)
            let slice = chunk.readSlice(length: min(chunk.readableBytes, partEnd - fed))!
            fed += slice.readableBytes
            chain = chain.flatMap { self.feed(slice, toPart: index, plan) }
        }
        return chain.map { [self] in doomed.map { .answer($0) } ?? .more }.flatMapError { [self] _ in
            // A part failed every retry while this chunk waited (``Doomed``), or the upload was cancelled.
            loop.makeSucceededFuture(doomed.map { .answer($0) } ?? .more)
        }
    }

    private func feed(_ slice: ByteBuffer, toPart index: Int, _ plan: Plan) -> EventLoopFuture<Void> {
        openPart(index, plan).flatMap { [self] part in
            let count = slice.readableBytes
            let written: EventLoopFuture<Void> =
                part.liveFailure != nil
                ? loop.makeSucceededVoidFuture()
                    // A failed write means the live attempt failed; its answer (or error) says how, and the part is
                    // then sent again from the spool.
                : part.writer.futureResult.flatMap { $0.write(.byteBuffer(slice)) }.hop(to: loop).recover { _ in }
            return written.map {
                part.fed += count
                if part.fed == part.length { part.bodyDone.succeed(()) }
            }
        }
    }

    /// Part `index`, opened (its live `PUT` started) when its first byte comes, once fewer than
    /// `part_concurrency` parts are open.
    private func openPart(_ index: Int, _ plan: Plan) -> EventLoopFuture<Part> {
        if let part = open[index] { return loop.makeSucceededFuture(part) }
        if doomed != nil { return loop.makeFailedFuture(Doomed()) }
        if case .over = phase { return loop.makeFailedFuture(CancellationError()) }
        guard open.count < settings.partConcurrency else {
            let waiter = loop.makePromise(of: Void.self)
            slotWaiter = waiter
            return waiter.futureResult.flatMap { self.openPart(index, plan) }
        }
        let offset = index * plan.partSize
        let part = Part(
            index: index, offset: offset, length: min(plan.partSize, settings.size - offset), url: plan.urls[index],
            requireETag: plan.id != nil, loop: loop)
        open[index] = part
        startLive(part)
        return loop.makeSucceededFuture(part)
    }

    private func startLive(_ part: Part) {
        let request: HTTPClient.Request
        do {
            request = try HTTPClient.Request(
                url: part.url, method: .PUT, headers: ["content-type": settings.mimeType],
                body: .stream(contentLength: Int64(part.length)) {
                    [writer = part.writer, done = part.bodyDone] streamWriter in
                    writer.succeed(streamWriter)
                    return done.futureResult
                })
        } catch {
            liveFailed(part, .unreachable)
            return
        }
        let task = client.execute(
            request: request, delegate: ResponseAccumulator(request: request, maxBodySize: 1 << 20))
        part.live = task
        task.futureResult.hop(to: loop).whenComplete { [self] result in
            guard open[part.index] === part else { return }
            switch result {
            case .success(let response) where (200..<300).contains(response.status.code):
                let etag = response.headers.first(name: "etag")
                if part.requireETag, etag?.isEmpty ?? true {
                    liveFailed(part, .noETag)
                } else {
                    settled(part, .success(etag ?? ""))
                }
            case .success(let response):
                liveFailed(part, .status(Int(response.status.code)))
            case .failure:
                liveFailed(part, .unreachable)
            }
        }
    }

    private func liveFailed(_ part: Part, _ failure: PresignedPut.Failure) {
        part.liveFailure = failure
        // Nothing more goes to the failed request: a writer still awaited fails, the body ends.
        part.writer.fail(CancellationError())
        part.bodyDone.fail(CancellationError())
        retryIfSpooled(part)
    }

    /// After a write: parts whose live attempt failed and whose bytes are now all in the spool are sent again.
    private func retryPartsNowSpooled() {
        for part in open.values { retryIfSpooled(part) }
    }

    private func retryIfSpooled(_ part: Part) {
        guard part.retry == nil, let failure = part.liveFailure, received >= part.offset + part.length else { return }
        guard settings.partRetries > 0, let file else {
            settled(part, .failure(failure))
            return
        }
        var put = PresignedPut(client: client, retries: settings.partRetries - 1)
        put.requireETag = part.requireETag
        let range = SpoolRange(file: file, offset: part.offset, length: part.length)
        let (url, length, mimeType, loop) = (part.url, part.length, settings.mimeType, loop)
        let promise = loop.makePromise(of: Result<String, PresignedPut.Failure>.self)
        part.retry = Task {
            promise.succeed(await put.send(url: url, contentType: mimeType) { .stream(range, length: .known(length)) })
        }
        promise.futureResult.whenSuccess { [self] result in
            guard open[part.index] === part else { return }
            settled(part, result)
        }
    }

    /// A part is over: stored (its spool space given back), or failed for good (the upload is doomed).
    private func settled(_ part: Part, _ result: Result<String, PresignedPut.Failure>) {
        // Whatever the storage did with the body, its promises are over (no-ops when already completed).
        part.writer.fail(CancellationError())
        part.bodyDone.fail(CancellationError())
        open[part.index] = nil
        results[part.index] = result
        switch result {
        case .success:
            file?.release(offset: part.offset, length: part.length)
        case .failure(let failure):
            if doomed == nil, case .streaming(let plan) = phase {
                let failed = results.filter { if case .failure = $0.value { true } else { false } }.keys.sorted().map {
                    $0 + 1
                }
                doomed =
                    failure == .spoolUnreadable
                    ? .problem(
                        .spoolFailed(reason: "the spooled upload could not be read back"), requestID: settings.requestID
                    )
                    : incomplete(
                        id: plan.id, failedParts: failed, partCount: plan.partCount,
                        reason: plan.partCount == 1
                            ? "the file could not be sent to its upload URL (\(failure.reason))."
                            : "a part could not be sent to its upload URL (\(failure.reason)).")
            }
        }
        if let waiter = slotWaiter {
            slotWaiter = nil
            if doomed != nil { waiter.fail(Doomed()) } else { waiter.succeed(()) }
        }
        if finished != nil, open.isEmpty, case .streaming(let plan) = phase { conclude(plan) }
    }

    // MARK: - The end

    /// Every part is settled and the body is over: complete the upload, or say what is missing.
    private func conclude(_ plan: Plan) {
        guard let finished else { return }
        self.finished = nil // completed here (or by the complete call's task), never by a later cancel()
        if let doomed { return finished.succeed(doomed) }
        var etags: [String] = []
        for index in 0..<plan.partCount {
            guard case .success(let etag)? = results[index] else {
                return finished.succeed(
                    incomplete(
                        id: plan.id, failedParts: [index + 1], partCount: plan.partCount,
                        reason: "a part was never sent."))
            }
            etags.append(etag)
        }
        guard let id = plan.id else {
            return finished.succeed(
                WriftAIUploadStart.createdAnswer(
                    downloadURL: plan.downloadURL ?? "", id: nil, size: settings.size,
                    mimeType: settings.mimeType))
        }
        let (call, settings, loop) = (call, settings, loop)
        finished.completeWithTask { [etags] in
            let path = "\(settings.path)/\(id)/complete"
            do {
                let answer = try await call.send(
                    method: .POST, path: path, json: WriftAIUploadStart.completeBody(etags: etags),
                    requestID: settings.requestID, on: loop)
                guard (200..<300).contains(answer.status) else {
                    return Self.incomplete(
                        id: id, partCount: etags.count,
                        reason: "every part was sent, but the platform refused to complete the upload.",
                        platformStatus: answer.status, requestID: settings.requestID)
                }
                guard let downloadURL = WriftAIUploadStart.downloadURL(inCompleteAnswer: answer.body) else {
                    return Self.incomplete(
                        id: id, partCount: etags.count,
                        reason: "the platform's answer to the complete call has no download_url.",
                        platformStatus: answer.status, requestID: settings.requestID)
                }
                return WriftAIUploadStart.createdAnswer(
                    downloadURL: downloadURL, id: id, size: settings.size, mimeType: settings.mimeType)
            } catch {
                return Self.incomplete(
                    id: id, partCount: etags.count,
                    reason:
                        "every part was sent, but the complete call got no answer (\(FollowUpCall.describe(error))).",
                    requestID: settings.requestID)
            }
        }
    }

    // MARK: - Answers

    /// Answers the client now (the transport drops the rest of the body) and stops everything else.
    private func answer(_ response: LocalResponse) -> EventLoopFuture<BodySinkResult> {
        doomed = response
        cancel()
        return loop.makeSucceededFuture(.answer(response))
    }

    private func settle(_ response: LocalResponse) -> EventLoopFuture<LocalResponse> {
        cancel()
        return loop.makeSucceededFuture(response)
    }

    private func incomplete(
        id: String?, failedParts: [Int] = [], partCount: Int, reason: String, platformStatus: Int? = nil
    ) -> LocalResponse {
        Self.incomplete(
            id: id, failedParts: failedParts, partCount: partCount, reason: reason, platformStatus: platformStatus,
            requestID: settings.requestID)
    }

    private static func incomplete(
        id: String?, failedParts: [Int] = [], partCount: Int, reason: String, platformStatus: Int? = nil,
        requestID: String
    ) -> LocalResponse {
        .problem(
            .uploadIncomplete(
                UploadIncomplete(
                    uploadID: id, failedParts: failedParts, partCount: partCount, reason: reason,
                    platformStatus: platformStatus)), requestID: requestID)
    }
}
