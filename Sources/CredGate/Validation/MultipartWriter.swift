import Foundation
import NIOCore

/// Writes `multipart/form-data` the way the platform's SDK sends it, for one boundary: whole parts, the envelope
/// a raw upload is streamed through, and the rewritten head of a client's multipart body.
///
/// Layout: every part opens with `--boundary CRLF`, its headers, a blank line, and its content followed by CRLF;
/// the body ends with `--boundary-- CRLF`.
struct MultipartWriter: Sendable {
    /// The boundary, without the leading `--`.
    let boundary: String

    /// A writer for `boundary`, which must be a valid RFC 2046 boundary (a fresh one by default).
    init(boundary: String = MultipartWriter.makeBoundary()) {
        precondition(UploadContentType.isValidBoundary(boundary), "invalid multipart boundary")
        self.boundary = boundary
    }

    /// A fresh boundary: `credgate-` and 32 random hex digits. 128 random bits make it as good as certain
    /// not to occur inside a file streamed between the preamble and epilogue unseen.
    static func makeBoundary() -> String {
        var generator = SystemRandomNumberGenerator()
        let high = generator.next() as UInt64
        let low = generator.next() as UInt64
        return "credgate-" + hex16(high) + hex16(low)
    }

    private static func hex16(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }

    /// The request's `Content-Type` for bodies written with this boundary.
    var contentType: String { "multipart/form-data; boundary=\(boundary)" }

    // MARK: Parts

    /// A text field: `--boundary CRLF Content-Disposition: form-data; name="..." CRLF CRLF value CRLF`.
    func field(_ name: String, _ value: String) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeString("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(Self.quoted(name))\"\r\n\r\n")
        buffer.writeString(value)
        buffer.writeString("\r\n")
        return buffer
    }

    /// A file part's opening: delimiter line and headers. The file's bytes follow, then ``partEnd``.
    /// `filename: nil` and `contentType: nil` leave those out (for testing what clients get wrong).
    func fileHead(field: String = "file", filename: String?, contentType: String?) -> ByteBuffer {
        var buffer = ByteBuffer()
        buffer.writeString("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(Self.quoted(field))\"")
        if let filename { buffer.writeString("; filename=\"\(Self.quoted(filename))\"") }
        buffer.writeString("\r\n")
        if let contentType { buffer.writeString("Content-Type: \(contentType)\r\n") }
        buffer.writeString("\r\n")
        return buffer
    }

    /// A whole file part: ``fileHead(field:filename:contentType:)``, the bytes and ``partEnd``.
    func filePart(field: String = "file", filename: String?, contentType: String?, data: some Sequence<UInt8>)
        -> ByteBuffer
    {
        var buffer = fileHead(field: field, filename: filename, contentType: contentType)
        buffer.writeBytes(data)
        buffer.writeString("\r\n")
        return buffer
    }

    /// The CRLF ending a part's content.
    var partEnd: ByteBuffer { ByteBuffer(string: "\r\n") }

    /// The closing delimiter line, `--boundary-- CRLF`, written after the last part's ``partEnd``.
    var closing: ByteBuffer { ByteBuffer(string: "--\(boundary)--\r\n") }

    // MARK: Raw upload

    /// The envelope that turns a raw body (`PUT /credgate/v1/files/{filename}`) into the platform's upload
    /// request: ``RawUploadEnvelope/preamble``, then the raw bytes unchanged, then ``RawUploadEnvelope/epilogue``.
    func rawUploadEnvelope(filename: String, type: FileType, name: String) -> RawUploadEnvelope {
        var preamble = field("name", name)
        var head = fileHead(filename: filename, contentType: type.mimeType)
        preamble.writeBuffer(&head)
        var epilogue = partEnd
        var close = closing
        epilogue.writeBuffer(&close)
        return RawUploadEnvelope(
            boundary: boundary, contentType: contentType, name: name, filename: filename,
            fileType: type, preamble: preamble, epilogue: epilogue)
    }

    // MARK: Rewriting a client's body

    /// The client's multipart head rewritten per `plan`: the generated `name` field inserted just before the file
    /// part, and the file part's `Content-Type` replaced by the detected one. Works on the buffered prefix only:
    /// `prefix` starts at the body's first byte and must reach at least `plan.filePart.dataOffset`; whatever it
    /// holds after that (the file's first bytes, perhaps more) is copied through untouched, as is everything the
    /// client sends afterwards. The client's boundary is kept, so the request's `Content-Type` does not change.
    /// Returns `prefix` itself when the plan changes nothing.
    func rewriteHead(_ prefix: ByteBuffer, for plan: UploadPlan) -> ByteBuffer {
        guard plan.needsRewrite, let layout = plan.filePart else { return prefix }
        precondition(prefix.readableBytes >= layout.dataOffset, "the prefix must reach the file part's content")
        func slice(_ from: Int, _ to: Int) -> ByteBuffer {
            prefix.getSlice(at: prefix.readerIndex + from, length: to - from)!
        }
        var out = ByteBuffer()
        out.reserveCapacity(prefix.readableBytes + 512)
        var before = slice(0, layout.delimiterOffset)
        out.writeBuffer(&before)
        if let name = plan.generatedName {
            var inserted = nameInsertion(name, beforeDelimiterWithCRLF: layout.delimiterHasLeadingCRLF)
            out.writeBuffer(&inserted)
        }
        var delimiterLine = slice(layout.delimiterOffset, layout.headersOffset)
        out.writeBuffer(&delimiterLine)
        let headers = slice(layout.headersOffset, layout.dataOffset)
        if let contentType = plan.correctedContentType {
            var replaced = Self.replacingContentType(in: headers, with: contentType)
            out.writeBuffer(&replaced)
        } else {
            var same = headers
            out.writeBuffer(&same)
        }
        var rest = slice(layout.dataOffset, prefix.readableBytes)
        out.writeBuffer(&rest)
        return out
    }

    /// The `name` field to insert at a delimiter's first byte. The text is the same length either way; only
    /// where the CRLF between the inserted field and the next delimiter goes differs.
    func nameInsertion(_ name: String, beforeDelimiterWithCRLF: Bool) -> ByteBuffer {
        var buffer = ByteBuffer()
        let part = "--\(boundary)\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n\(name)"
        buffer.writeString(beforeDelimiterWithCRLF ? "\r\n" + part : part + "\r\n")
        return buffer
    }

    /// A header block (`Line CRLF ... CRLF`, ending with the blank line) with its `Content-Type` lines dropped
    /// and `Content-Type: contentType` added last; the other lines are kept byte for byte.
    static func replacingContentType(in block: ByteBuffer, with contentType: String) -> ByteBuffer {
        let bytes = Array(block.readableBytesView)
        var out = ByteBuffer()
        var lineStart = 0
        var i = 0
        while i + 1 < bytes.count {
            guard bytes[i] == 0x0D, bytes[i + 1] == 0x0A else {
                i += 1
                continue
            }
            let line = bytes[lineStart..<i]
            if line.isEmpty { break } // the blank line
            let name = line.prefix { $0 != UInt8(ascii: ":") }
            if String(decoding: name, as: UTF8.self).lowercased() != "content-type" {
                out.writeBytes(line)
                out.writeString("\r\n")
            }
            i += 2
            lineStart = i
        }
        out.writeString("Content-Type: \(contentType)\r\n\r\n")
        return out
    }

    /// A parameter value made safe inside double quotes the way browsers and urllib3 do it (WHATWG): `"`, CR and
    /// LF percent-encoded, everything else kept.
    static func quoted(_ value: String) -> String {
        var out = ""
        out.reserveCapacity(value.utf8.count)
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "%22"
            case "\r": out += "%0D"
            case "\n": out += "%0A"
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}

/// The bytes around a raw upload's body that make it the platform's multipart request:
/// a `name` field with a generated name, then the `file` part's headers; after the body, the closing delimiter.
struct RawUploadEnvelope: Sendable, Equatable {
    let boundary: String
    /// The upstream request's `Content-Type`: `multipart/form-data; boundary=...`.
    let contentType: String
    /// The `name` field's value: a random UUID plus the file's extension, lower-cased.
    let name: String
    let filename: String
    let fileType: FileType
    /// Sent before the raw bytes.
    let preamble: ByteBuffer
    /// Sent after the raw bytes.
    let epilogue: ByteBuffer

    /// The upstream `Content-Length` for a raw body of `bodyLength` bytes.
    func contentLength(bodyLength: Int) -> Int {
        preamble.readableBytes + bodyLength + epilogue.readableBytes
    }

    /// The bytes the envelope adds.
    var overhead: Int { preamble.readableBytes + epilogue.readableBytes }
}
