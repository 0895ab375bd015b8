import NIOCore
import NIOHTTP1

/// The body of a one-call WriftAI upload as it arrives: its first bytes checked against the type its name
/// claims (a `.pdf` that is a PNG is refused with 415 before anything leaves), every byte written to an
/// ``UploadSpoolFile`` (encrypted, synchronously: that is what holds the client back), and its exact size
/// counted. When the body ends, the stage hands the transport the first platform call's JSON body (`{"size",
/// "mime_type"}`) in place of the file, so what the transport forwards is that call, with the route's credentials.
///
/// Confined to the connection's event loop, like every body stage.
final class WriftAIUploadStage: RequestBodyStage, @unchecked Sendable {
    let filename: String
    let mimeType: String
    let flow: WriftAIUploadConfig.Flow
    private var firstBytes: [UInt8] = []
    private var checked = false
    let eventLoop: any EventLoop
    private let directory: String
    /// Where the file waits until the platform has said where to send it; opened at the first byte.
    private(set) var file: UploadSpoolFile?
    /// Bytes of the file so far (all of them once the body ended).
    private(set) var size = 0

    init(
        filename: String, mimeType: String, flow: WriftAIUploadConfig.Flow, spool: SpoolConfig, eventLoop: any EventLoop
    ) {
        self.filename = filename
        self.mimeType = mimeType
        self.flow = flow
        self.eventLoop = eventLoop
        self.directory = spool.directory
    }

    func feed(_ chunk: ByteBuffer) -> BodyStageResult {
        guard chunk.readableBytes > 0 else { return .pass([]) }
        if !checked {
            firstBytes += chunk.readableBytesView.prefix(FileType.sniffLength - firstBytes.count)
            if firstBytes.count >= FileType.sniffLength, let refusal = checkContent() {
                return refuse(refusal.gatewayError)
            }
        }
        do {
            if file == nil { file = try UploadSpoolFile(directory: directory) }
            try file!.append(chunk)
        } catch {
            return refuse(.spoolFailed(reason: (error as? IOError)?.description ?? "an I/O error"))
        }
        size += chunk.readableBytes
        return .pass([])
    }

    func finish(head: inout HTTPRequestHead) -> BodyStageResult {
        if !checked, let refusal = checkContent() { return refuse(refusal.gatewayError) }
        if size == 0 { return refuse(UploadRejection.emptyFile(filename).gatewayError) }
        head.headers.replaceOrAdd(name: "content-type", value: "application/json")
        head.headers.replaceOrAdd(name: "accept", value: "application/json")
        let body = WriftAIUploadStart.requestBody(flow: flow, filename: filename, size: size, mimeType: mimeType)
        return .pass([ByteBuffer(string: body)])
    }

    /// Closes the file; safe more than once.
    func close() {
        file?.close()
    }

    private func refuse(_ error: GatewayError) -> BodyStageResult {
        close()
        return .respond(error)
    }

    /// A refusal when the name claims a type credgate recognises and the first bytes are not of it.
    private func checkContent() -> UploadRejection? {
        checked = true
        return Self.contentRefusal(filename: filename, firstBytes: firstBytes)
    }

    /// A refusal when `filename` claims a type credgate recognises and `firstBytes` (at least
    /// ``FileType/sniffLength`` of them, or the whole file) are not of it.
    static func contentRefusal(filename: String, firstBytes: [UInt8]) -> UploadRejection? {
        guard let claimed = FileType(filename: filename), !firstBytes.starts(with: claimed.magic) else { return nil }
        let content = FileType.describeContent(firstBytes)
        return UploadRejection(
            .contentMismatch,
            "The file '\(UploadHeaderSyntax.clip(filename))' is named as a \(claimed.displayName) "
                + "but its content is \(content); rename it or upload the intended file. Nothing was sent to the platform."
        )
    }
}
