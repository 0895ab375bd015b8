import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import NIOPosix

/// The upload's later steps, once the platform answered the first call (``WriftAIUploadStart``): the file, read
/// back from the stage's spool, goes to the presigned storage URLs, then the three-step flow completes with the
/// parts' ETags in order. The answer is credgate's `201`, or a problem that says exactly what is missing
/// (`upload-incomplete`): never a success for a file the platform does not hold whole.
///
/// Parts go up `partConcurrency` at a time, each read from the spool file as it is sent (one chunk in memory per
/// part in flight, whatever the part size) and read again for a retry.
struct WriftAIUploadRun: Sendable {
    let stage: WriftAIUploadStage
    /// The spooled file, its size and type, read from the stage on its loop once the body ended.
    let file: UploadSpoolFile?
    let size: Int
    let mimeType: String
    let put: PresignedPut
    let partConcurrency: Int
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

    private func parts(id: String, urls: [String], partSize: Int) async -> LocalResponse {
        let count = (size + partSize - 1) / partSize
        guard count == urls.count else {
            return incomplete(
                id: id, partCount: urls.count,
                reason:
                    "the platform listed \(urls.count) part URLs for \(size) bytes in parts of \(partSize) bytes (\(count) parts)."
            )
        }
        guard let file else { return spoolUnreadable() }
        let (size, mimeType, put) = (size, mimeType, put)
        let results = await withTaskGroup(of: (Int, Result<String, PresignedPut.Failure>).self) { group in
            var results: [Int: Result<String, PresignedPut.Failure>] = [:]
            var next = 0
            func start(_ index: Int) {
                let offset = index * partSize
                let length = min(partSize, size - offset)
                let range = SpoolRange(file: file, offset: offset, length: length)
                group.addTask {
                    (
                        index,
                        await put.send(url: urls[index], contentType: mimeType) {
                            .stream(range, length: .known(length))
                        }
                    )
                }
            }
            while next < min(count, partConcurrency) {
                start(next)
                next += 1
            }
            while let (index, result) = await group.next() {
                results[index] = result
                // A part that failed every retry dooms the upload: start no more.
                if next < count, !results.values.contains(where: { if case .failure = $0 { true } else { false } }) {
                    start(next)
                    next += 1
                }
            }
            return results
        }
        var etags: [String] = []
        var failed: [(Int, PresignedPut.Failure)] = []
        for index in 0..<count {
            switch results[index] {
            case .success(let etag)?: etags.append(etag)
            case .failure(let failure)?: failed.append((index, failure))
            case nil: break // never started: an earlier part failed
            }
        }
        if let first = failed.first {
            if first.1 == .spoolUnreadable { return spoolUnreadable() }
            return incomplete(
                id: id, failedParts: failed.map { $0.0 + 1 }, partCount: count,
                reason: "a part could not be sent to its upload URL (\(first.1.reason)).")
        }
        return await completeUpload(id: id, etags: etags, partCount: count)
    }

    private func completeUpload(id: String, etags: [String], partCount: Int) async -> LocalResponse {
        guard let complete else {
            return incomplete(
                id: id, partCount: partCount, reason: "credgate has no route to complete the upload with.")
        }
        let path = "\(path)/\(id)/complete"
        do {
            let answer = try await complete.send(
                method: .POST, path: path, json: WriftAIUploadStart.completeBody(etags: etags),
                requestID: requestID, on: stage.eventLoop)
            guard (200..<300).contains(answer.status) else {
                return incomplete(
                    id: id, partCount: partCount,
                    reason: "every part was sent, but the platform refused to complete the upload.",
                    platformStatus: answer.status)
            }
            guard let downloadURL = WriftAIUploadStart.downloadURL(inCompleteAnswer: answer.body) else {
                return incomplete(
                    id: id, partCount: partCount,
                    reason: "the platform's answer to the complete call has no download_url.",
                    platformStatus: answer.status)
            }
            return WriftAIUploadStart.createdAnswer(downloadURL: downloadURL, id: id, size: size, mimeType: mimeType)
        } catch {
            return incomplete(
                id: id, partCount: partCount,
                reason: "every part was sent, but the complete call got no answer (\(FollowUpCall.describe(error))).")
        }
    }

    // MARK: - One step (SDK 0.28)

    /// One `PUT` of the whole file, streamed from the spool (read again from the start for a retry).
    private func single(uploadURL: String, downloadURL: String) async -> LocalResponse {
        guard let file else { return spoolUnreadable() }
        var put = put
        put.requireETag = false
        let range = SpoolRange(file: file, offset: 0, length: size)
        let size = size
        switch await put.send(url: uploadURL, contentType: mimeType, makeBody: { .stream(range, length: .known(size)) })
        {
        case .success:
            return WriftAIUploadStart.createdAnswer(downloadURL: downloadURL, id: nil, size: size, mimeType: mimeType)
        case .failure(.spoolUnreadable):
            return spoolUnreadable()
        case .failure(let failure):
            return incomplete(
                id: nil, failedParts: [1], partCount: 1,
                reason: "the file could not be sent to its upload URL (\(failure.reason)).")
        }
    }

    private func spoolUnreadable() -> LocalResponse {
        .problem(.spoolFailed(reason: "the spooled upload could not be read back"), requestID: requestID)
    }

    private func incomplete(
        id: String?, failedParts: [Int] = [], partCount: Int, reason: String, platformStatus: Int? = nil
    ) -> LocalResponse {
        .problem(
            .uploadIncomplete(
                UploadIncomplete(
                    uploadID: id, failedParts: failedParts, partCount: partCount, reason: reason,
                    platformStatus: platformStatus)), requestID: requestID)
    }
}
