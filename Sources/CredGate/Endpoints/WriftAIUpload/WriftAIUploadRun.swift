import AsyncHTTPClient
import NIOConcurrencyHelpers
import NIOCore
import NIOHTTP1

/// The upload's later steps, once the platform answered the first call (``WriftAIUploadStart``): the file, read
/// back from the stage's spool, goes to the presigned storage URLs, then the three-step flow completes with the
/// parts' ETags in order. The answer is credgate's `201`, or a problem that says exactly what is missing
/// (`upload-incomplete`): never a success for a file the platform does not hold whole.
///
/// Parts go up `partConcurrency` at a time. A part is held in memory from when it is read until its `PUT`
/// succeeds (it is sent again from there), so the parts held at once are bounded by ``partMemory`` as well:
/// with large parts, fewer go up together.
struct WriftAIUploadRun: Sendable {
    let stage: WriftAIUploadStage
    /// The file's size and type, read from the stage on its loop once the body ended.
    let size: Int
    let mimeType: String
    let put: PresignedPut
    let partConcurrency: Int
    /// Bytes of parts held in memory at once: the parts in flight and the one being filled.
    var partMemory = 40 * 1024 * 1024
    /// The platform path of the first call; the three-step flow completes at `{path}/{id}/complete`.
    let path: String
    /// Sends the complete call through the route that serves `path` (its credentials).
    let complete: FollowUpCall?
    let requestID: String

    func run(_ start: WriftAIUploadStart) async -> LocalResponse {
        defer { stage.close() }
        switch start {
        case .parts(let id, let urls, let partSize):
            return await parts(id: id, urls: urls, partSize: partSize)
        case .single(let uploadURL, let downloadURL):
            return await single(uploadURL: uploadURL, downloadURL: downloadURL)
        }
    }

    // MARK: - Three steps

    private struct PartsOutcome {
        var etags: [String]
        var failed: [Int: PresignedPut.Failure] = [:]
        var sent = 0
        var spoolFailed = false
    }

    private func parts(id: String, urls: [String], partSize: Int) async -> LocalResponse {
        let count = (size + partSize - 1) / partSize
        guard count == urls.count else {
            return incomplete(id: id, partCount: urls.count,
                              reason: "the platform listed \(urls.count) part URLs for \(size) bytes in parts of \(partSize) bytes (\(count) parts).")
        }
        // At least one part goes up at a time, whatever its size.
        let concurrency = max(1, min(partConcurrency, partMemory / partSize - 1))
        let chunks = SpoolChunks(stage.spool, eventLoop: stage.eventLoop)
        let (size, mimeType, put) = (size, mimeType, put)
        let outcome = await withTaskGroup(of: (Int, Result<String, PresignedPut.Failure>).self) { group -> PartsOutcome in
            var outcome = PartsOutcome(etags: Array(repeating: "", count: count))
            func record(_ done: (Int, Result<String, PresignedPut.Failure>)) {
                switch done.1 {
                case .success(let etag): outcome.etags[done.0] = etag
                case .failure(let failure): outcome.failed[done.0] = failure
                }
            }
            var inFlight = 0
            var part = ByteBuffer()
            do {
                reading: while let chunk = try await chunks.next() {
                    var chunk = chunk
                    while chunk.readableBytes > 0, outcome.sent < count {
                        let length = min(partSize, size - outcome.sent * partSize)
                        if part.readableBytes == 0 { part = ByteBufferAllocator().buffer(capacity: length) }
                        var slice = chunk.readSlice(length: min(length - part.readableBytes, chunk.readableBytes))!
                        part.writeBuffer(&slice)
                        guard part.readableBytes == length else { continue }
                        if inFlight >= concurrency, let done = await group.next() {
                            inFlight -= 1
                            record(done)
                        }
                        // A part that failed every retry dooms the upload: send no more.
                        if !outcome.failed.isEmpty { break reading }
                        let (body, url, index) = (part, urls[outcome.sent], outcome.sent)
                        group.addTask { (index, await put.send(url: url, contentType: mimeType) { .bytes(body) }) }
                        inFlight += 1
                        outcome.sent += 1
                        part = ByteBuffer()
                    }
                }
            } catch {
                outcome.spoolFailed = !(error is SpoolChunks.Stopped)
            }
            chunks.stop()
            for await done in group { record(done) }
            return outcome
        }
        if !outcome.failed.isEmpty {
            let numbers = outcome.failed.keys.sorted()
            let first = outcome.failed[numbers[0]]!
            return incomplete(id: id, failedParts: numbers.map { $0 + 1 }, partCount: count,
                              reason: "a part could not be sent to its upload URL (\(first.reason)).")
        }
        if outcome.spoolFailed || outcome.sent != count {
            return .problem(.spoolFailed(reason: "the spooled upload could not be read back"), requestID: requestID)
        }
        return await completeUpload(id: id, etags: outcome.etags, partCount: count)
    }

    private func completeUpload(id: String, etags: [String], partCount: Int) async -> LocalResponse {
        guard let complete else {
            return incomplete(id: id, partCount: partCount, reason: "credgate has no route to complete the upload with.")
        }
        let path = "\(path)/\(id)/complete"
        do {
            let answer = try await complete.send(method: .POST, path: path, json: WriftAIUploadStart.completeBody(etags: etags),
                                                 requestID: requestID, on: stage.eventLoop)
            guard (200..<300).contains(answer.status) else {
                return incomplete(id: id, partCount: partCount, reason: "every part was sent, but the platform refused to complete the upload.",
                                  platformStatus: answer.status)
            }
            guard let downloadURL = WriftAIUploadStart.downloadURL(inCompleteAnswer: answer.body) else {
                return incomplete(id: id, partCount: partCount, reason: "the platform's answer to the complete call has no download_url.",
                                  platformStatus: answer.status)
            }
            return WriftAIUploadStart.createdAnswer(downloadURL: downloadURL, id: id, size: size, mimeType: mimeType)
        } catch {
            return incomplete(id: id, partCount: partCount,
                              reason: "every part was sent, but the complete call got no answer (\(FollowUpCall.describe(error))).")
        }
    }

    // MARK: - One step (SDK 0.28)

    /// One `PUT` of the whole file, streamed from the spool (read again from the start for a retry).
    private func single(uploadURL: String, downloadURL: String) async -> LocalResponse {
        var put = put
        put.requireETag = false
        let (stage, size) = (stage, size)
        // A reading the client gave up on (a failed attempt) is stopped, or the spool would wait on it forever and
        // the next attempt's reading, queued behind it, would never start.
        let reading = NIOLockedValueBox<SpoolChunks?>(nil)
        let result = await put.send(url: uploadURL, contentType: mimeType) {
            let chunks = SpoolChunks(stage.spool, eventLoop: stage.eventLoop)
            reading.withLockedValue { previous in
                previous?.stop()
                previous = chunks
            }
            return .stream(chunks, length: .known(Int64(size)))
        }
        reading.withLockedValue { $0?.stop() }
        switch result {
        case .success:
            return WriftAIUploadStart.createdAnswer(downloadURL: downloadURL, id: nil, size: size, mimeType: mimeType)
        case .failure(let failure):
            return incomplete(id: nil, failedParts: [1], partCount: 1, reason: "the file could not be sent to its upload URL (\(failure.reason)).")
        }
    }

    private func incomplete(id: String?, failedParts: [Int] = [], partCount: Int, reason: String, platformStatus: Int? = nil) -> LocalResponse {
        .problem(.uploadIncomplete(UploadIncomplete(uploadID: id, failedParts: failedParts, partCount: partCount, reason: reason,
                                                    platformStatus: platformStatus)), requestID: requestID)
    }
}
