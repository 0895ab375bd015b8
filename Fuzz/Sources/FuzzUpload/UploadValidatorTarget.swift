import Foundation
import FuzzSupport
import NIOCore

@testable import CredGate

/// Fuzz target: `UploadValidator`, the multipart upload check that reads client bodies byte by byte (through
/// MultipartKit's parser) before anything reaches the platform. A trap here kills the gateway for every client,
/// as a part header name byte of 0x80 once did (`--B\r\nX\x80: 1\r\n\r\n`, MultipartKit's 128-entry table).
///
/// Input layout:
/// ```
/// byte 0     flags: bit 0 unused (it chose a hold-until-end mode the validator no longer has), bit 1 captureFields,
///            bit 2 declare Content-Length = body length, bits 3-4 limit (25 MiB, 64, 512, 4096 bytes)
/// byte 1     n = byte & 7: how many chunk sizes follow (0: the body in one chunk)
/// n bytes    chunk sizes (see fuzzChunks)
/// line       the request's Content-Type, e.g. multipart/form-data; boundary=B
/// rest       the body
/// ```
/// Besides traps, it checks what the validator promises: nothing forwardable after a rejection or before a
/// decision; a final answer from `finish()`; an accepted body forwarded whole with only its head changed, by
/// exactly `bodyLengthDelta` bytes; and the same final answer, forwarded bytes and fields whatever the chunking.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzUploadValidator(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let flags = input.byte()
    let sizes = input.bytes(Int(input.byte() & 7))
    let contentType = String(fuzzBytes: input.line())
    let body = input.rest()
    let options = UploadRun.Options(
        contentType: contentType,
        contentLength: flags & 4 == 0 ? nil : body.count,
        limit: [UploadValidator.defaultLimit, 64, 512, 4096][Int(flags >> 3) & 3],
        captureFields: flags & 2 != 0)

    guard let fuzzed = UploadRun(options, body: body, sizes: sizes) else { return 0 }
    let whole = UploadRun(options, body: body, sizes: [])!
    fuzzExpect(
        fuzzed.final == whole.final,
        "chunking changed the final decision: \(fuzzed.final) in chunks \(sizes), \(whole.final) whole")
    fuzzExpect(fuzzed.forwarded == whole.forwarded, "chunking changed the forwarded bytes")
    fuzzExpect(fuzzed.fields == whole.fields, "chunking changed the captured fields")
    return 0
}

/// One validator fed one body, with what it said and forwarded.
struct UploadRun {
    struct Options {
        var contentType: String
        var contentLength: Int?
        var limit: Int
        var captureFields: Bool
    }

    let final: UploadDecision
    let forwarded: [UInt8]
    let fields: [String]

    /// Nil when the validator refuses the request head (no body is read then).
    init?(_ options: Options, body: [UInt8], sizes: [UInt8]) {
        var validator: UploadValidator
        do {
            validator = try UploadValidator(
                contentType: options.contentType, contentLength: options.contentLength, limit: options.limit,
                captureFields: options.captureFields, uuid: { fixedUUID })
        } catch {
            _ = error.description
            return nil
        }
        var forwarded: [UInt8] = []
        func collect(after decision: UploadDecision, finished: Bool) {
            let taken = validator.takeForwardable()
            switch decision {
            case .reject(let rejection):
                _ = rejection.gatewayError
                fuzzExpect(taken.isEmpty, "bytes forwardable after a rejection")
            case .needMore:
                fuzzExpect(taken.isEmpty, "bytes forwardable before a decision")
            case .accept:
                break
            }
            for buffer in taken { forwarded += buffer.readableBytesView }
        }
        for chunk in fuzzChunks(body, sizes: sizes) {
            let decision = validator.feed(ByteBuffer(bytes: chunk))
            collect(after: decision, finished: false)
        }
        let final = validator.finish()
        collect(after: final, finished: true)
        fuzzExpect(final != .needMore, "finish() left the upload undecided")
        fuzzExpect(validator.finish() == final, "a second finish() changed the decision")

        if let plan = final.plan {
            fuzzExpect(validator.bytesSeen == body.count, "bytesSeen \(validator.bytesSeen) for \(body.count) bytes")
            fuzzExpect(body.count <= options.limit, "accepted \(body.count) bytes over the limit \(options.limit)")
            fuzzExpect(
                forwarded.count == body.count + plan.bodyLengthDelta,
                "forwarded \(forwarded.count) bytes for \(body.count) + delta \(plan.bodyLengthDelta)")
            fuzzExpect(
                FileType.detect(Array(body[(plan.filePart?.dataOffset ?? 0)...].prefix(FileType.sniffLength)))
                    == plan.fileType, "accepted a file whose first bytes are not a \(plan.fileType)")
            if let part = plan.filePart {
                // Only the head before the file's content may change.
                let content = body[part.dataOffset...]
                fuzzExpect(forwarded.suffix(content.count).elementsEqual(content), "the file's bytes were changed")
            } else {
                fuzzExpect(forwarded == body, "changed the body without a file part layout")
            }
        }
        self.final = final
        self.forwarded = final.plan == nil ? [] : forwarded
        self.fields = validator.textFields.map { "\($0.name)=\($0.value)" }
    }
}

/// Generated names must not depend on the run, or two runs of one input could not be compared.
let fixedUUID = UUID(
    uuid: (0x1b, 0x4e, 0x28, 0xba, 0x2f, 0xa1, 0x11, 0xd2, 0x88, 0x3f, 0x00, 0x16, 0xd3, 0xcc, 0x42, 0x7e))
