import Foundation
import FuzzSupport
import NIOCore

@testable import CredGate

/// Fuzz target: `RawUploadValidator` (`PUT /credgate/v1/files/{filename}`) and the percent-decoding of its
/// `{filename}` path segment, both straight from the client.
///
/// Input layout:
/// ```
/// byte 0     flags: bit 0 unused (it chose a hold-until-end mode the validator no longer has), bit 1 declare Content-Length = body length,
///            bits 2-3 limit (25 MiB, 64, 512, 4096 bytes)
/// byte 1     n = byte & 7: how many chunk sizes follow (0: the body in one chunk)
/// n bytes    chunk sizes (see fuzzChunks)
/// line       the {filename} path segment as sent, still percent-encoded
/// rest       the body (the file's raw bytes)
/// ```
/// Besides traps, it checks that an accepted upload is forwarded as the envelope's preamble, the raw bytes
/// unchanged and the epilogue (so `Content-Length` plus `bodyLengthDelta` is right), that nothing is
/// forwardable after a rejection or before a decision, and that chunking does not change the verdict.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRawUploadValidator(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let flags = input.byte()
    let sizes = input.bytes(Int(input.byte() & 7))
    let segment = String(fuzzBytes: input.line())
    let body = input.rest()
    guard let filename = RawUploadValidator.filename(fromPathSegment: segment) else { return 0 }
    let contentLength = flags & 2 == 0 ? nil : body.count
    let limit = [UploadValidator.defaultLimit, 64, 512, 4096][Int(flags >> 2) & 3]

    func run(_ sizes: [UInt8]) -> (final: UploadDecision, forwarded: [UInt8])? {
        var validator: RawUploadValidator
        do {
            validator = try RawUploadValidator(
                filename: filename, contentLength: contentLength, limit: limit,
                boundary: "credgate-fuzz-boundary", uuid: { fixedUUID })
        } catch {
            _ = error.gatewayError
            return nil
        }
        var forwarded: [UInt8] = []
        func collect(_ decision: UploadDecision, finished: Bool) {
            let taken = validator.takeForwardable()
            if decision.plan == nil { fuzzExpect(taken.isEmpty, "bytes forwardable while \(decision)") }
            for buffer in taken { forwarded += buffer.readableBytesView }
        }
        for chunk in fuzzChunks(body, sizes: sizes) {
            collect(validator.feed(ByteBuffer(bytes: chunk)), finished: false)
        }
        let final = validator.finish()
        collect(final, finished: true)
        fuzzExpect(final != .needMore, "finish() left the upload undecided")
        if let plan = final.plan {
            let envelope = validator.envelope
            let expected =
                Array(envelope.preamble.readableBytesView) + body + Array(envelope.epilogue.readableBytesView)
            fuzzExpect(forwarded == expected, "the forwarded body is not preamble + raw bytes + epilogue")
            fuzzExpect(forwarded.count == body.count + plan.bodyLengthDelta, "bodyLengthDelta is wrong")
            fuzzExpect(envelope.contentLength(bodyLength: body.count) == forwarded.count, "contentLength is wrong")
            fuzzExpect(body.count <= limit, "accepted \(body.count) bytes over the limit \(limit)")
        }
        return (final, final.plan == nil ? [] : forwarded)
    }

    guard let fuzzed = run(sizes) else { return 0 }
    let whole = run([])!
    // Accepted or not must not depend on the chunking. Which rejection comes first may: over the limit in the
    // first chunk is a 413 before the first bytes are looked at, while small chunks meet a 415 first (unlike
    // UploadValidator, this type does not promise otherwise).
    fuzzExpect(
        (fuzzed.final.plan == nil) == (whole.final.plan == nil),
        "chunking changed the verdict: \(fuzzed.final) vs \(whole.final)")
    fuzzExpect(fuzzed.forwarded == whole.forwarded, "chunking changed the forwarded bytes")
    return 0
}

/// Generated names must not depend on the run, or two runs of one input could not be compared.
let fixedUUID = UUID(
    uuid: (0x1b, 0x4e, 0x28, 0xba, 0x2f, 0xa1, 0x11, 0xd2, 0x88, 0x3f, 0x00, 0x16, 0xd3, 0xcc, 0x42, 0x7e))
