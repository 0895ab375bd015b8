import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// `PUT /credgate/v1/wriftai/files/{name}` with the file as the body (`curl -T report.pdf ...`): WriftAI's whole
/// upload in one call, answered `201` `{"download_url", "id", "size", "mime_type"}`.
///
/// Three steps (SDK 0.30 and later): `POST /uploads` `{size, mime_type}` → `{id, urls, part_size}`; `PUT` each
/// part to its presigned URL (exact `Content-Length`, the same `Content-Type`, no `Authorization`); `POST
/// /uploads/{id}/complete` `{etags}` → `{download_url}`. Or SDK 0.28's one step: `POST /files/urls` → one `PUT
/// upload_url`. Chosen in `endpoints.wriftai_upload`.
///
/// ## Why this shape
/// The platform must be told the exact size first, and the answer (where to send the bytes) can only be used
/// after it. Within the filter contract the one place that can wait for asynchronous work *after* a body is a
/// response filter's `respondLater`, which comes after a forwarded call; and the one place that sees a large body
/// as it streams is a body stage. So:
/// 1. `decodeHead` turns the request into the flow's first platform call (`POST {path}`), so the route's own
///    filters put its credentials on and the transport sends it like any request of the route (timeouts, pool,
///    access log, a 401 replayed after a session renewal).
/// 2. The body stage (``WriftAIUploadStage``) checks the first bytes against the name's type (415 before anything
///    leaves), writes the file to an encrypted spool file of its own (``UploadSpoolFile``: synchronously, which is
///    what holds the client back, since a stage cannot pause reading) and counts its exact size; at the end it
///    hands the transport the first call's JSON body instead of the file.
/// 3. On the platform's `2xx` answer, ``encodeResponse(_:body:context:)`` answers later: ``WriftAIUploadRun``
///    reads each part back from the spool file as it sends it to its presigned URL with AsyncHTTPClient (absolute URLs
///    on hosts no route names; a part `PUT` carries no credential), then completes through the route with a
///    ``FollowUpCall``. Any other answer to the first call is passed on unchanged.
///
/// That is the path of a chunked body, whose size is only known at its end. A body with a `Content-Length` does not
/// wait: the endpoint gives the transport a body sink (``WriftAIStreamingUpload``) that makes the first call as
/// soon as the first bytes passed the type check and sends the parts as the client sends them, with backpressure.
struct WriftAIUploadEndpoint: HeadFilter, BodySinkFilter, BodyStageFilter, ResponseFilter {
    static let prefix = "/credgate/v1/wriftai/files/"
    static let pattern = prefix + "{name}"
    /// The request's stage (the response filter reads the file back from its spool).
    static let stageKey = ScratchKey<WriftAIUploadStage>("wriftai.upload.stage")
    /// The request's sink, when the body's size is known from the head.
    static let sinkKey = ScratchKey<WriftAIStreamingUpload>("wriftai.upload.sink")
    /// The first call's answer (`{id, urls, part_size}` or `{upload_url, download_url}`) is small.
    static let answerLimit = 1 << 20

    let config: WriftAIUploadConfig
    /// Where the file waits (the gateway's `spool:` settings, directory resolved).
    let spool: SpoolConfig
    /// Completes the three-step flow through the route that serves ``WriftAIUploadConfig/path``.
    let complete: FollowUpCall?
    /// The upstream's ``UpstreamConfig/mount``: a follow-up call's path is joined to the upstream's base URL as it
    /// is, so the mount the data path takes off (`/v1/uploads` → base URL + `/uploads`) is taken off here too.
    var mount = ""
    var client: HTTPClientProvider = .shared

    /// `path` as the follow-up call sends it: without the upstream's mount when it starts with it.
    static func followUpPath(_ path: String, mount: String) -> String {
        guard !mount.isEmpty, path.hasPrefix(mount) else { return path }
        let rest = path.dropFirst(mount.count)
        if rest.isEmpty { return "/" }
        return rest.first == "/" ? String(rest) : path
    }

    /// The `spool:` settings with the directory resolved as the transport resolves it (`$TMPDIR`, else `/tmp`).
    static func resolved(_ spool: SpoolConfig) -> SpoolConfig {
        var spool = spool
        if spool.directory.isEmpty {
            spool.directory = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        }
        return spool
    }

    func decodeHead(_ head: inout HTTPRequestHead, context: FilterContext) -> FilterHeadResult {
        let path = ProxyHandler.path(of: context.clientHead.uri)
        let segment = String(path.dropFirst(Self.prefix.count))
        guard let filename = segment.removingPercentEncoding, !filename.isEmpty else {
            return .problem(UploadRejection.invalidFilename("is not valid percent-encoding").gatewayError, context)
        }
        if let problem = UploadFileName.problem(filename) {
            return .problem(UploadRejection.invalidFilename(problem).gatewayError, context)
        }
        if head.headers.first(name: "content-length") == "0" {
            return .problem(UploadRejection.emptyFile(filename).gatewayError, context)
        }
        let mimeType = WriftAIMediaType.of(filename: filename)
        if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > 0,
            !head.headers.contains(name: "transfer-encoding"), let call = complete
        {
            // The size is known: the body goes to the storage part by part as it arrives.
            let settings = WriftAIStreamingUpload.Settings(
                filename: filename, mimeType: mimeType, size: length, flow: config.flow,
                path: Self.followUpPath(config.path, mount: mount),
                partConcurrency: config.partConcurrency, partRetries: config.partRetries,
                spoolDirectory: spool.directory,
                requestID: context.requestID)
            context.scratch[Self.sinkKey] = WriftAIStreamingUpload(
                settings: settings, call: call, client: client.client, loop: context.eventLoop)
            return .proceed
        }
        let stage = WriftAIUploadStage(
            filename: filename, mimeType: mimeType, flow: config.flow, spool: spool, eventLoop: context.eventLoop)
        context.scratch[Self.stageKey] = stage
        head.method = .POST
        head.uri = config.path
        // The stage replaces the file with the first call's JSON; the transport sets its Content-Length.
        head.headers.remove(name: "content-length")
        head.headers.remove(name: "transfer-encoding")
        head.headers.replaceOrAdd(name: "content-type", value: "application/json")
        return .proceed
    }

    func bodySink(for head: HTTPRequestHead, context: FilterContext) -> (any RequestBodySink)? {
        context.scratch[Self.sinkKey]
    }

    func bodyStage(for head: HTTPRequestHead, context: FilterContext) -> (any RequestBodyStage)? {
        context.scratch[Self.stageKey]
    }

    func responseBufferLimit(for head: HTTPResponseHead, context: FilterContext) -> Int? {
        (200..<300).contains(head.status.code) && context.scratch[Self.stageKey] != nil ? Self.answerLimit : nil
    }

    func encodeResponse(_ head: inout HTTPResponseHead, body: inout ByteBuffer, context: FilterContext)
        -> ResponseFilterResult
    {
        guard (200..<300).contains(head.status.code), let stage = context.scratch[Self.stageKey] else {
            return .proceed
        }
        guard let start = WriftAIUploadStart.parse(body, flow: config.flow) else {
            stage.close()
            let wanted = config.flow == .threeStep ? "id, urls and part_size" : "upload_url and download_url"
            let failure = UploadIncomplete(
                uploadID: nil, reason: "the platform's answer to POST \(config.path) has no usable \(wanted).",
                platformStatus: Int(head.status.code))
            return .respondWith(.problem(.uploadIncomplete(failure), requestID: context.requestID))
        }
        let run = WriftAIUploadRun(
            stage: stage, file: stage.file, size: stage.size, mimeType: stage.mimeType,
            put: PresignedPut(client: client.client, retries: config.partRetries),
            partConcurrency: config.partConcurrency, path: Self.followUpPath(config.path, mount: mount),
            complete: complete, requestID: context.requestID)
        let promise = context.eventLoop.makePromise(of: LocalResponse.self)
        promise.completeWithTask { await run.run(start) }
        return .respondLater(promise.futureResult)
    }
}

/// Which HTTP client sends the presigned `PUT`s (tests may give their own).
struct HTTPClientProvider: Sendable {
    let client: HTTPClient
    static var shared: HTTPClientProvider { HTTPClientProvider(client: PresignedPut.sharedClient) }
}
