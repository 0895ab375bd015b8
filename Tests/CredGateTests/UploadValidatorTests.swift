import Foundation
import MultipartKit
import NIOCore
import Testing

@testable import CredGate

// MARK: - Fixtures

private enum Sample {
    static let pdf: [UInt8] = Array(
        "%PDF-1.7\n%\u{E2}\u{E3}\u{CF}\u{D3}\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
            .utf8)
    static let png: [UInt8] = [
        0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44, 0x52,
        0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F, 0x15, 0xC4,
    ]
    static let jpeg: [UInt8] = [
        0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 0x4A, 0x46, 0x49, 0x46, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0x2D,
        0xFF, 0xD9,
    ]
    /// What a renamed .docx starts with.
    static let docx: [UInt8] = [0x50, 0x4B, 0x03, 0x04, 0x14, 0x00, 0x06, 0x00, 0x08, 0x00, 0x00, 0x00, 0x21, 0x00]
    static let uuid = UUID(uuidString: "1B4E28BA-2FA1-11D2-883F-0016D3CCA427")!
    static let generated = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
}

private let writer = MultipartWriter(boundary: "----credgateTestBoundary7MA4YWxkTrZu0gW")
private let contentType = writer.contentType

private func bytes(_ buffers: ByteBuffer...) -> [UInt8] {
    buffers.flatMap { Array($0.readableBytesView) }
}

/// A body as the SDK sends it: `name` field (unless nil), the file part, the closing line.
private func sdkBody(
    name: String? = "1b4e.pdf", filename: String? = "license.pdf", contentType: String? = "application/pdf",
    data: [UInt8] = Sample.pdf
) -> [UInt8] {
    var out: [UInt8] = []
    if let name { out += bytes(writer.field("name", name)) }
    out += bytes(writer.filePart(filename: filename, contentType: contentType, data: data))
    out += bytes(writer.closing)
    return out
}

private struct Outcome: Equatable {
    var decision: UploadDecision
    var forwarded: [UInt8]
    /// Decisions returned by `feed`, one per chunk.
    var early: [UploadDecision] = []

    /// Same final decision and, when accepted, the same bytes forwarded. (After a late rejection, how much went
    /// out before it depends on the chunking; it is aborted anyway.)
    static func == (a: Outcome, b: Outcome) -> Bool {
        a.decision == b.decision && (a.decision.plan == nil || a.forwarded == b.forwarded)
    }
}

/// Feeds `body` cut at `cuts` (offsets), then finishes.
private func run(
    _ body: [UInt8], cuts: [Int], contentType: String = contentType, limit: Int = UploadValidator.defaultLimit
) throws -> Outcome {
    var validator = try UploadValidator(contentType: contentType, limit: limit, uuid: { Sample.uuid })
    var outcome = Outcome(decision: .needMore, forwarded: [])
    var start = 0
    for end in cuts + [body.count] where end > start {
        outcome.early.append(validator.feed(ByteBuffer(bytes: body[start..<end])))
        outcome.forwarded += validator.takeForwardable().flatMap { Array($0.readableBytesView) }
        start = end
    }
    outcome.decision = validator.finish()
    outcome.forwarded += validator.takeForwardable().flatMap { Array($0.readableBytesView) }
    return outcome
}

private func run(
    _ body: [UInt8], chunkSize: Int = .max, contentType: String = contentType, limit: Int = UploadValidator.defaultLimit
) throws -> Outcome {
    let cuts = chunkSize >= body.count ? [] : Array(stride(from: chunkSize, to: body.count, by: chunkSize))
    return try run(body, cuts: cuts, contentType: contentType, limit: limit)
}

private func rejection(_ body: [UInt8], contentType: String = contentType, limit: Int = UploadValidator.defaultLimit)
    throws -> UploadRejection?
{
    try run(body, contentType: contentType, limit: limit).decision.rejection
}

/// The parts of a multipart body as MultipartKit's own parser reads them.
private final class ParsedParts {
    struct Part: Equatable {
        var headers: [String: String] = [:]
        var body: [UInt8] = []
        var disposition: String { headers["content-disposition"] ?? "" }
    }
    var parts: [Part] = []
    private var current = Part()

    init(_ bytes: [UInt8], boundary: String) throws {
        let parser = MultipartParser(boundary: boundary)
        parser.onHeader = { [unowned self] name, value in self.current.headers[name.lowercased()] = value }
        parser.onBody = { [unowned self] body in self.current.body += Array(body.readableBytesView) }
        parser.onPartComplete = { [unowned self] in
            self.parts.append(self.current)
            self.current = Part()
        }
        try parser.execute(bytes)
    }
}

// MARK: - File types

@Suite struct FileTypeTests {
    @Test func extensionsInAnyCase() {
        #expect(FileType(extension: "pdf") == .pdf)
        #expect(FileType(extension: ".PNG") == .png)
        #expect(FileType(extension: "Jpg") == .jpeg)
        #expect(FileType(extension: ".JPEG") == .jpeg)
        #expect(FileType(extension: "docx") == nil)
        #expect(FileType(filename: "scans/2024.final.PDF") == .pdf)
        #expect(FileType.fileExtension(of: "README") == nil)
        #expect(FileType.fileExtension(of: ".bashrc") == nil)
        #expect(FileType.fileExtension(of: "C:\\Users\\me\\scan.JPEG") == "jpeg")
        #expect(FileType.fileExtension(of: "archive.tar.GZ") == "gz")
    }

    @Test func mimeTypes() {
        #expect(FileType.allCases.map(\.mimeType) == ["application/pdf", "image/png", "image/jpeg"])
        #expect(FileType(mimeType: "IMAGE/JPG; q=1") == .jpeg)
        #expect(FileType(mimeType: "application/pdf") == .pdf)
        #expect(FileType(mimeType: "text/plain") == nil)
        for generic in [
            nil, "", "  ", "application/octet-stream", "Binary/Octet-Stream",
            "application/octet-stream; charset=binary",
        ] {
            #expect(FileType.isGenericMIMEType(generic), "\(generic ?? "nil")")
        }
        #expect(!FileType.isGenericMIMEType("image/png"))
    }

    @Test func magicNumbers() {
        #expect(FileType.detect(Sample.pdf) == .pdf)
        #expect(FileType.detect(Sample.png) == .png)
        #expect(FileType.detect(Sample.jpeg) == .jpeg)
        #expect(FileType.detect(Sample.docx) == nil)
        #expect(FileType.detect(Array(Sample.png.prefix(7))) == nil)
        #expect(FileType.detect([0xFF, 0xD8]) == nil)
        #expect(FileType.describeContent(Sample.docx).contains("ZIP"))
        #expect(FileType.describeContent(Array("GIF89a..".utf8)) == "a GIF image")
        #expect(FileType.describeContent(Array("hello, world".utf8)) == "text")
    }
}

// MARK: - Accepting and planning

@Suite struct UploadValidatorAcceptTests {
    @Test func sdkStyleUploadPassesUnchanged() throws {
        let body = sdkBody()
        let outcome = try run(body)
        let plan = try #require(outcome.decision.plan)
        #expect(plan.filename == "license.pdf")
        #expect(plan.fileType == .pdf)
        #expect(plan.clientName == "1b4e.pdf")
        #expect(plan.generatedName == nil && !plan.nameMissing)
        #expect(plan.correctedContentType == nil)
        #expect(!plan.needsRewrite && plan.bodyLengthDelta == 0)
        #expect(outcome.forwarded == body)
        // Accepted on the first (only) chunk: nothing waits for finish().
        #expect(outcome.early == [.accept(plan)])
    }

    @Test func missingNameGetsAUUIDKeepingTheExtension() throws {
        let body = sdkBody(name: nil, filename: "Scan.PDF")
        var validator = try UploadValidator(contentType: contentType) // real random UUIDs
        _ = validator.feed(ByteBuffer(bytes: body))
        let plan = try #require(validator.finish().plan)
        let name = try #require(plan.generatedName)
        #expect(
            name.wholeMatch(of: /[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\.pdf/) != nil,
            "\(name)")
        #expect(plan.nameMissing && plan.needsRewrite)

        let forwarded = bytes(
            validator.takeForwardable().reduce(into: ByteBuffer()) { acc, next in
                var n = next
                acc.writeBuffer(&n)
            })
        #expect(forwarded.count == body.count + plan.bodyLengthDelta)
        let parts = try ParsedParts(forwarded, boundary: writer.boundary).parts
        #expect(parts.count == 2)
        #expect(parts[0].disposition == "form-data; name=\"name\"")
        #expect(parts[0].body == Array(name.utf8))
        #expect(parts[1].disposition == "form-data; name=\"file\"; filename=\"Scan.PDF\"")
        #expect(parts[1].body == Sample.pdf)
    }

    @Test func upperCaseJPEGExtension() throws {
        let outcome = try run(sdkBody(name: nil, filename: "PHOTO.JPEG", contentType: "image/jpeg", data: Sample.jpeg))
        let plan = try #require(outcome.decision.plan)
        #expect(plan.fileType == .jpeg)
        #expect(plan.generatedName == Sample.generated + ".jpeg")
        #expect(plan.correctedContentType == nil)
    }

    @Test(arguments: [
        nil, "", "application/octet-stream", "binary/octet-stream", "Application/Octet-Stream; charset=binary",
    ])
    func genericDeclaredTypeIsCorrected(_ declared: String?) throws {
        let body = sdkBody(filename: "chart.png", contentType: declared, data: Sample.png)
        let outcome = try run(body)
        let plan = try #require(outcome.decision.plan)
        #expect(plan.declaredContentType == declared)
        #expect(plan.correctedContentType == "image/png")
        #expect(plan.generatedName == nil)
        #expect(outcome.forwarded.count == body.count + plan.bodyLengthDelta)
        let parts = try ParsedParts(outcome.forwarded, boundary: writer.boundary).parts
        #expect(parts.map(\.body) == [Array("1b4e.pdf".utf8), Sample.png])
        #expect(parts[1].headers["content-type"] == "image/png")
        #expect(parts[1].disposition == "form-data; name=\"file\"; filename=\"chart.png\"")
    }

    @Test func specificDeclaredTypeIsKept() throws {
        let plan = try #require(try run(sdkBody(contentType: "application/pdf")).decision.plan)
        #expect(plan.correctedContentType == nil)
    }

    @Test func bothRewritesAtOnceOnABodyOpeningWithoutCRLF() throws {
        // Hand-built: no preamble, file first, no Content-Type, lower-case header names.
        let text = "--XyZ\r\ncontent-disposition: form-data; name=\"file\"; filename=\"a.jpg\"\r\nx-extra: kept\r\n\r\n"
        let body =
            Array(text.utf8) + Sample.jpeg
            + Array("\r\n--XyZ\r\ncontent-disposition: form-data; name=\"note\"\r\n\r\nhi\r\n--XyZ--\r\n".utf8)
        let outcome = try run(body, contentType: "multipart/form-data; boundary=XyZ")
        let plan = try #require(outcome.decision.plan)
        #expect(
            plan.filePart
                == MultipartPartLayout(
                    index: 0, delimiterOffset: 0, delimiterHasLeadingCRLF: false,
                    headersOffset: 7, dataOffset: text.utf8.count))
        let parts = try ParsedParts(outcome.forwarded, boundary: "XyZ").parts
        #expect(parts.count == 3)
        #expect(parts[0].body == Array("\(Sample.generated).jpg".utf8))
        #expect(
            parts[1].headers == [
                "content-disposition": "form-data; name=\"file\"; filename=\"a.jpg\"",
                "x-extra": "kept", "content-type": "image/jpeg",
            ])
        #expect(parts[1].body == Sample.jpeg)
        #expect(parts[2].body == Array("hi".utf8))
    }

    @Test func preambleQuotedBoundaryAndExtendedFilename() throws {
        let text =
            "ignored preamble\r\n--a b'c\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9.PDF\r\n\r\n"
        let body = Array(text.utf8) + Sample.pdf + Array("\r\n--a b'c--".utf8)
        let outcome = try run(body, contentType: "Multipart/Form-Data; charset=utf-8; Boundary=\"a b'c\"")
        let plan = try #require(outcome.decision.plan)
        #expect(plan.filename == "résumé.PDF")
        #expect(plan.generatedName == Sample.generated + ".pdf")
        #expect(plan.filePart?.delimiterOffset == 16 && plan.filePart?.delimiterHasLeadingCRLF == true)
    }

    @Test func streamingAcceptsOnTheFirstBytesAndHoldsNothingAfter() throws {
        let body = sdkBody(data: Sample.pdf + [UInt8](repeating: 0x41, count: 100_000))
        let fileStart = sdkBody().count - Sample.pdf.count - bytes(writer.partEnd, writer.closing).count
        var validator = try UploadValidator(contentType: contentType)
        // Everything up to 7 bytes into the file: undecided, all held.
        #expect(validator.feed(ByteBuffer(bytes: body[0..<(fileStart + 7)])) == .needMore)
        #expect(validator.takeForwardable().isEmpty)
        #expect(validator.retainedBytes >= fileStart + 7)
        // The 8th byte decides.
        let decision = validator.feed(ByteBuffer(bytes: body[(fileStart + 7)..<(fileStart + 8)]))
        #expect(decision.plan != nil)
        #expect(validator.takeForwardable().map(\.readableBytes).reduce(0, +) == fileStart + 8)
        #expect(validator.retainedBytes <= FileType.sniffLength)
        #expect(validator.feed(ByteBuffer(bytes: body[(fileStart + 8)...])) == decision)
        #expect(validator.finish() == decision)
    }

    @Test func nameAfterTheFilePart() throws {
        let body = bytes(
            writer.filePart(filename: "a.pdf", contentType: "application/pdf", data: Sample.pdf),
            writer.field("name", "mine.pdf"), writer.closing)
        // Streaming decides before seeing it: a generated name goes first, the client's (read last by Django) after.
        let streamed = try #require(try run(body).decision.plan)
        #expect(streamed.generatedName == Sample.generated + ".pdf" && streamed.clientName == nil)
    }

    @Test func nameOfExactly255BytesIsFine() throws {
        let name = String(repeating: "é", count: 127) + "a" // 255 UTF-8 bytes
        #expect(try run(sdkBody(name: name)).decision.plan?.clientName == name)
    }
}

// MARK: - Rejections

@Suite struct UploadValidatorRejectionTests {
    private func initRejection(
        contentType: String?, contentLength: Int? = nil, limit: Int = UploadValidator.defaultLimit
    ) -> UploadRejection? {
        do throws(UploadRejection) {
            _ = try UploadValidator(contentType: contentType, contentLength: contentLength, limit: limit)
            return nil
        } catch {
            return error
        }
    }

    @Test func requestContentType() {
        let cases: [(String?, Int, String)] = [
            (nil, 415, "upload-not-multipart"),
            ("application/json", 415, "upload-not-multipart"),
            ("multipart/mixed; boundary=abc", 415, "upload-not-multipart"),
            ("multipart/form-data", 400, "upload-missing-boundary"),
            ("multipart/form-data; boundary=", 400, "upload-missing-boundary"),
            ("multipart/form-data; charset=utf-8", 400, "upload-missing-boundary"),
            ("multipart/form-data; boundary=" + String(repeating: "x", count: 71), 400, "upload-invalid-boundary"),
            ("multipart/form-data; boundary=\"ends with space \"", 400, "upload-invalid-boundary"),
            ("multipart/form-data; boundary=a{b}", 400, "upload-invalid-boundary"),
        ]
        for (header, status, code) in cases {
            let rejection = initRejection(contentType: header)
            #expect(
                rejection?.status == status && rejection?.code == code,
                "\(header ?? "nil"): \(String(describing: rejection))")
        }
        #expect(initRejection(contentType: "multipart/form-data; boundary=" + String(repeating: "x", count: 70)) == nil)
    }

    @Test func declaredLengthOverTheLimit() {
        let rejection = initRejection(contentType: contentType, contentLength: 30 * 1024 * 1024)
        #expect(rejection?.status == 413 && rejection?.code == "upload-too-large")
        #expect(
            rejection?.detail
                == "The upload is 30 MiB, which is over this route's limit of 25 MiB; it was not uploaded.")
        #expect(initRejection(contentType: contentType, contentLength: 0)?.code == "upload-missing-file")
    }

    @Test func noFilePart() throws {
        let r = try rejection(bytes(writer.field("name", "x.pdf"), writer.closing))
        #expect(r?.status == 422 && r?.code == "upload-missing-file")
        #expect(try rejection([])?.code == "upload-missing-file")
        let other = try rejection(
            bytes(
                writer.filePart(field: "document", filename: "a.pdf", contentType: nil, data: Sample.pdf),
                writer.closing))
        #expect(other?.code == "upload-missing-file")
        #expect(other?.detail.contains("'document'") == true)
    }

    @Test func severalFileParts() throws {
        let two = bytes(
            writer.filePart(filename: "a.pdf", contentType: nil, data: Sample.pdf),
            writer.filePart(filename: "b.pdf", contentType: nil, data: Sample.pdf), writer.closing)
        let r = try rejection(two)
        #expect(r?.status == 422 && r?.code == "upload-multiple-files")
        // A file under another field name counts too.
        let sneaky = bytes(
            writer.filePart(filename: "a.pdf", contentType: nil, data: Sample.pdf),
            writer.filePart(field: "extra", filename: "b.png", contentType: nil, data: Sample.png), writer.closing)
        #expect(try rejection(sneaky)?.code == "upload-multiple-files")
    }

    @Test func emptyFile() throws {
        let r = try rejection(sdkBody(data: []))
        #expect(r?.status == 422 && r?.code == "upload-empty-file")
        #expect(r?.detail == "The file 'license.pdf' is empty (0 bytes); it was not uploaded.")
    }

    @Test func fileWithoutFilename() throws {
        let r = try rejection(sdkBody(filename: nil))
        #expect(r?.status == 422 && r?.code == "upload-missing-filename")
        #expect(try rejection(sdkBody(filename: ""))?.code == "upload-missing-filename")
    }

    @Test func extensionNotAllowed() throws {
        let r = try rejection(sdkBody(filename: "contract.DOCX", data: Sample.docx))
        #expect(r?.status == 415 && r?.code == "upload-unsupported-type")
        #expect(r?.detail == "Unsupported file format: '.docx'. Assured only accepts PDF, PNG, and JPEG files.")
        let none = try rejection(sdkBody(filename: "README", data: Sample.pdf))
        #expect(none?.code == "upload-unsupported-type")
        #expect(none?.detail.contains("has no extension") == true)
    }

    @Test(arguments: [
        ("license.pdf", Sample.png, "is named as a PDF but its content is a PNG image; rename it to .png"),
        ("chart.png", Sample.pdf, "is named as a PNG but its content is a PDF document; rename it to .pdf"),
        ("photo.jpg", Sample.png, "is named as a JPEG but its content is a PNG image"),
        ("chart.png", Sample.jpeg, "is named as a PNG but its content is a JPEG image"),
        ("contract.pdf", Sample.docx, "is named as a PDF but its content is a ZIP archive"),
        ("tiny.pdf", Array("%PD".utf8), "is named as a PDF but its content is text"),
    ])
    func contentNotMatchingTheExtension(_ filename: String, _ data: [UInt8], _ sentence: String) throws {
        let r = try rejection(sdkBody(filename: filename, data: data))
        #expect(r?.status == 415 && r?.code == "upload-content-mismatch")
        #expect(r?.detail.contains(sentence) == true, "\(r?.detail ?? "")")
    }

    @Test func malformedBodies() throws {
        let good = sdkBody()
        let cases: [(String, [UInt8])] = [
            ("truncated before the closing line", Array(good.dropLast(bytes(writer.closing).count))),
            ("truncated inside the file", Array(good.prefix(good.count - 40))),
            (
                "closing line with one hyphen",
                Array(good.dropLast(bytes(writer.closing).count)) + Array("--\(writer.boundary)-x".utf8)
            ),
            ("another boundary", Array(sdkBody().map { $0 == UInt8(ascii: "7") ? UInt8(ascii: "8") : $0 })),
            (
                "header without a colon",
                Array("--\(writer.boundary)\r\nContent-Disposition form-data\r\n\r\nx\r\n--\(writer.boundary)--".utf8)
            ),
            (
                "part without Content-Disposition",
                Array("--\(writer.boundary)\r\nContent-Type: text/plain\r\n\r\nx\r\n--\(writer.boundary)--".utf8)
            ),
            (
                "bad delimiter line",
                Array(
                    "--\(writer.boundary)\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nx\r\n--\(writer.boundary)x\r\n"
                        .utf8)
            ),
            ("closing at once", Array("--\(writer.boundary)--\r\n".utf8)),
            (
                "headers too long",
                Array("--\(writer.boundary)\r\nX-Long: \(String(repeating: "a", count: 17_000))\r\n\r\n".utf8)
            ),
            (
                "attachment, not form-data",
                Array(
                    "--\(writer.boundary)\r\nContent-Disposition: attachment; name=\"file\"\r\n\r\nx\r\n--\(writer.boundary)--"
                        .utf8)
            ),
        ]
        for (what, body) in cases {
            let r = try rejection(body)
            #expect(r?.status == 400 && r?.code == "upload-malformed", "\(what): \(String(describing: r))")
        }
    }

    /// MultipartKit traps on a header-name byte >= 0x80 (issue 8): the framing refuses it first, whichever
    /// chunk it arrives in, in any part, and whatever the byte.
    @Test func headerNameBytesThatAreNotTokenCharactersAreRefusedBeforeTheParser() throws {
        let b = writer.boundary
        for byte in [
            UInt8(0x80), 0x81, 0xC3, 0xFE, 0xFF, 0x00, 0x01, 0x7F, UInt8(ascii: " "), UInt8(ascii: "\""),
            UInt8(ascii: "@"),
        ] {
            let first = Array("--\(b)\r\nX".utf8) + [byte] + Array(": 1\r\n\r\nx\r\n--\(b)--\r\n".utf8)
            let later =
                bytes(writer.field("name", "a.pdf")) + Array("--\(b)\r\nContent-Type: text/plain\r\n".utf8) + [byte]
                + Array(": 1\r\n\r\nx\r\n--\(b)--\r\n".utf8)
            for body in [first, later] {
                for chunkSize in [1, 7, .max] {
                    let r = try run(body, chunkSize: chunkSize).decision.rejection
                    #expect(
                        r?.code == "upload-malformed" && r?.detail.contains("header name") == true,
                        "byte \(byte): \(String(describing: r))")
                }
            }
        }
        // In a value (a UTF-8 file name) the same bytes are fine.
        let utf8Name =
            bytes(writer.filePart(filename: "Ärztin-Zulassung.pdf", contentType: "application/pdf", data: Sample.pdf))
            + bytes(writer.closing)
        #expect(try run(utf8Name, chunkSize: 3).decision.plan != nil)
    }

    @Test func bodyOverTheLimit() throws {
        let body = sdkBody(data: Sample.pdf + [UInt8](repeating: 0x20, count: 5000))
        let r = try rejection(body, limit: 4096)
        #expect(r?.status == 413 && r?.code == "upload-too-large")
        #expect(r?.detail == "The upload is over this route's limit of 4 KiB; it was not uploaded.")
        #expect(try rejection(body, limit: body.count) == nil)
        #expect(try rejection(body, limit: body.count - 1)?.code == "upload-too-large")
    }

    @Test(arguments: [
        ("dir/evil.pdf", "contains a path separator"),
        ("..\\evil.pdf", "contains a path separator"),
        ("bad\u{01}name.pdf", "contains a control character"),
        ("bad\u{85}name.pdf", "contains a control character"),
        (String(repeating: "a", count: 256), "is longer than 255 bytes"),
        ("", "is empty"),
        ("..", "names a directory"),
    ])
    func badNameField(_ name: String, _ problem: String) throws {
        let r = try rejection(sdkBody(name: name))
        #expect(r?.status == 422 && r?.code == "upload-invalid-name")
        #expect(r?.detail.contains(problem) == true, "\(r?.detail ?? "")")
    }

    @Test func nameThatIsNotUTF8() throws {
        var body = bytes(writer.field("name", "x.pdf"))
        body[body.count - 4] = 0xFF
        let r = try rejection(
            body + bytes(writer.filePart(filename: "a.pdf", contentType: nil, data: Sample.pdf), writer.closing))
        #expect(r?.code == "upload-invalid-name" && r?.detail.contains("UTF-8") == true)
    }

    @Test func lateRejectionAfterAnEarlyAccept() throws {
        let body = bytes(
            writer.filePart(filename: "a.pdf", contentType: nil, data: Sample.pdf),
            writer.filePart(field: "file", filename: "b.pdf", contentType: nil, data: Sample.pdf), writer.closing)
        let firstPart = bytes(writer.filePart(filename: "a.pdf", contentType: nil, data: Sample.pdf)).count
        let streamed = try run(body, cuts: [firstPart])
        #expect(streamed.early.first?.plan != nil) // already forwarding...
        #expect(streamed.decision.rejection?.code == "upload-multiple-files") // ...so the upstream must be aborted
    }

    @Test func everyKindHasItsStatus() {
        let expected: [UploadRejection.Kind: Int] = [
            .notMultipart: 415, .unsupportedType: 415, .contentMismatch: 415, .tooLarge: 413,
            .missingBoundary: 400, .invalidBoundary: 400, .malformed: 400,
            .missingFile: 422, .multipleFiles: 422, .emptyFile: 422, .missingFilename: 422, .invalidName: 422,
            .invalidFilename: 422, .invalidField: 422,
        ]
        for kind in UploadRejection.Kind.allCases {
            #expect(kind.status == expected[kind])
            #expect(kind.rawValue.hasPrefix("upload-"))
        }
        let error = UploadRejection.multipleFiles.gatewayError
        #expect(error.code == "upload-multiple-files" && error.status.code == 422)
    }
}

// MARK: - Chunking and memory

/// A PDF whose content keeps almost containing the delimiter.
private let nearDelimiters: [UInt8] =
    Sample.pdf
    + Array(
        "\r\n--\(writer.boundary.dropLast())X\r\n\r\r\n-\r\n--\r\nx--\(writer.boundary)\r\n--\(writer.boundary.prefix(9))"
            .utf8)
    + [0x0D] + Array("\r\n--\(writer.boundary.dropLast())".utf8)

@Suite struct UploadValidatorStreamingTests {
    static let bodies: [(String, [UInt8], String)] = [
        ("accept as is", sdkBody(), writer.contentType),
        (
            "accept, name added and type fixed",
            sdkBody(name: nil, filename: "a.PNG", contentType: "application/octet-stream", data: Sample.png),
            writer.contentType
        ),
        (
            "accept, JPEG with CRLF-- inside", sdkBody(filename: "a.jpeg", contentType: nil, data: Sample.jpeg),
            writer.contentType
        ),
        (
            "accept, short boundary, file first",
            Array("--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.png\"\r\n\r\n".utf8) + Sample.png
                + Array("\r\n--b\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nn.png\r\n--b--\r\n".utf8),
            "multipart/form-data; boundary=b"
        ),
        (
            "accept, file full of near-delimiters, then fields",
            bytes(
                writer.filePart(filename: "a.pdf", contentType: nil, data: nearDelimiters),
                writer.field("name", "late.pdf"), writer.field("note", "x"), writer.closing), writer.contentType
        ),
        ("mismatch", sdkBody(filename: "a.pdf", data: Sample.png), writer.contentType),
        ("docx", sdkBody(filename: "a.docx", data: Sample.docx), writer.contentType),
        (
            "two files",
            bytes(
                writer.filePart(filename: "a.pdf", contentType: nil, data: Sample.pdf),
                writer.filePart(filename: "b.pdf", contentType: nil, data: Sample.pdf), writer.closing),
            writer.contentType
        ),
        ("empty file", sdkBody(data: []), writer.contentType),
        ("accept, short file", sdkBody(filename: "a.jpg", data: [0xFF, 0xD8, 0xFF]), writer.contentType),
        ("unclosed", Array(sdkBody().dropLast(8)), writer.contentType),
        ("bad name", sdkBody(name: "a/b.pdf"), writer.contentType),
    ]

    @Test(arguments: 0..<bodies.count)
    func oneByteAtATimeDecidesTheSame(_ index: Int) throws {
        let (what, body, type) = Self.bodies[index]
        let whole = try run(body, contentType: type)
        #expect((whole.decision.plan != nil) == what.hasPrefix("accept"), "\(what): \(whole.decision)")
        let bytewise = try run(body, chunkSize: 1, contentType: type)
        #expect(bytewise == whole, "\(what)")
        #expect(bytewise.early.count == body.count)
        // Cut in two at every byte.
        for cut in 1..<body.count {
            #expect(try run(body, cuts: [cut], contentType: type) == whole, "\(what), cut at \(cut)")
        }
    }

    @Test func fieldsAfterALongFileAreStillRead() throws {
        // The file's content is skipped by the fast framing scan; the parser rejoins at its closing delimiter.
        let body = bytes(
            writer.filePart(
                filename: "a.pdf", contentType: "application/pdf",
                data: nearDelimiters + [UInt8](repeating: 0x0D, count: 300_000) + nearDelimiters),
            writer.field("name", "late.pdf"), writer.closing)
        for chunk in [1000, 4096, 65536] {
            let streamed = try run(body, chunkSize: chunk)
            #expect(streamed.decision.plan?.generatedName != nil)
            #expect(streamed.forwarded.count == body.count + (streamed.decision.plan?.bodyLengthDelta ?? -1))
        }
        let twoFiles = bytes(
            writer.filePart(
                filename: "a.pdf", contentType: nil, data: nearDelimiters + [UInt8](repeating: 0x41, count: 200_000)),
            writer.filePart(filename: "b.pdf", contentType: nil, data: Sample.pdf), writer.closing)
        #expect(try run(twoFiles, chunkSize: 8192).decision.rejection?.code == "upload-multiple-files")
    }

    @Test func thirtyMiBIsRefusedWithoutBeingHeld() throws {
        let size = 30 * 1024 * 1024
        var body = writer.fileHead(filename: "big.pdf", contentType: "application/pdf")
        body.writeBytes(Sample.pdf)
        body.writeRepeatingByte(0x30, count: size - body.readableBytes - 64)
        var tail = writer.partEnd
        body.writeBuffer(&tail)
        var close = writer.closing
        body.writeBuffer(&close)

        var validator = try UploadValidator(contentType: contentType)
        var decision = UploadDecision.needMore
        var fed = 0
        var forwarded = 0
        var peakAfterTake = 0
        var peak = 0
        var accepted: UploadPlan?
        while fed < body.readableBytes {
            let length = min(64 * 1024, body.readableBytes - fed)
            decision = validator.feed(body.getSlice(at: fed, length: length)!)
            fed += length
            accepted = accepted ?? decision.plan
            peak = max(peak, validator.retainedBytes)
            forwarded += validator.takeForwardable().map(\.readableBytes).reduce(0, +)
            peakAfterTake = max(peakAfterTake, validator.retainedBytes)
            if decision.rejection != nil { break }
        }
        let rejection = try #require(decision.rejection)
        #expect(rejection.status == 413 && rejection.code == "upload-too-large")
        #expect(fed == UploadValidator.defaultLimit + 64 * 1024, "refused on the chunk that crosses the limit")
        #expect(validator.finish() == decision)
        #expect(validator.retainedBytes == 0)
        // The chunk in hand, grown by the inserted name field, and the file's first bytes.
        #expect(peak <= 64 * 1024 + 512, "never more than the chunk in hand")
        #expect(peakAfterTake <= FileType.sniffLength)
        let delta = try #require(accepted?.bodyLengthDelta)
        #expect(
            forwarded == UploadValidator.defaultLimit + delta, "streamed until the limit: the upstream must be aborted")
    }
}

// MARK: - Writer and raw uploads

@Suite struct UploadWriterTests {
    @Test func boundaries() {
        let a = MultipartWriter.makeBoundary()
        let b = MultipartWriter.makeBoundary()
        #expect(a != b)
        #expect(a.wholeMatch(of: /credgate-[0-9a-f]{32}/) != nil)
        #expect(UploadContentType.isValidBoundary(a))
        #expect(MultipartWriter(boundary: a).contentType == "multipart/form-data; boundary=\(a)")
    }

    @Test func rawEnvelopeRoundTripsThroughMultipartKit() throws {
        let writer = MultipartWriter()
        let envelope = writer.rawUploadEnvelope(
            filename: "my \"scan\".PDF", type: .pdf, name: Sample.generated + ".pdf")
        let body = Sample.pdf + Array("\r\n--not-the-boundary\r\n".utf8) + (0...255).map { UInt8($0) }
        let all = bytes(envelope.preamble) + body + bytes(envelope.epilogue)
        #expect(envelope.contentLength(bodyLength: body.count) == all.count)
        #expect(envelope.contentType == writer.contentType)
        let parts = try ParsedParts(all, boundary: writer.boundary).parts
        #expect(parts.count == 2)
        #expect(parts[0].headers == ["Content-Disposition".lowercased(): "form-data; name=\"name\""])
        #expect(parts[0].body == Array((Sample.generated + ".pdf").utf8))
        #expect(
            parts[1].headers == [
                "content-disposition": "form-data; name=\"file\"; filename=\"my %22scan%22.PDF\"",
                "content-type": "application/pdf",
            ])
        #expect(parts[1].body == body)
        // And the validator accepts what the writer makes.
        var validator = try UploadValidator(contentType: envelope.contentType, contentLength: all.count)
        _ = validator.feed(ByteBuffer(bytes: all))
        #expect(validator.finish().plan?.clientName == Sample.generated + ".pdf")
    }

    @Test func writtenPartsRoundTrip() throws {
        let body = bytes(
            writer.field("name", "n.png"), writer.field("note", "two\r\nlines"),
            writer.filePart(filename: "x.png", contentType: "image/png", data: Sample.png), writer.closing)
        let parts = try ParsedParts(body, boundary: writer.boundary).parts
        #expect(parts.map(\.body) == [Array("n.png".utf8), Array("two\r\nlines".utf8), Sample.png])
    }

    @Test func rewriteHeadLeavesEverythingAfterTheHeadersAlone() throws {
        let body = sdkBody(name: nil, contentType: "binary/octet-stream")
        let outcome = try run(body)
        let plan = try #require(outcome.decision.plan)
        let layout = try #require(plan.filePart)
        let rewritten = writer.rewriteHead(ByteBuffer(bytes: body), for: plan)
        #expect(bytes(rewritten) == outcome.forwarded)
        #expect(Array(bytes(rewritten).suffix(body.count - layout.dataOffset)) == Array(body[layout.dataOffset...]))
        // A plan that changes nothing returns the prefix as is.
        var unchanged = plan
        unchanged.generatedName = nil
        unchanged.correctedContentType = nil
        #expect(bytes(writer.rewriteHead(ByteBuffer(bytes: body), for: unchanged)) == body)
    }
}

@Suite struct RawUploadValidatorTests {
    private func run(
        _ filename: String, _ body: [UInt8], chunkSize: Int = .max, limit: Int = UploadValidator.defaultLimit
    )
        throws -> (UploadDecision, [UInt8], RawUploadValidator)
    {
        var validator = try RawUploadValidator(
            filename: filename, contentLength: nil, limit: limit,
            boundary: "raw-boundary", uuid: { Sample.uuid })
        var forwarded: [UInt8] = []
        var start = 0
        while start < body.count {
            let end = min(body.count, start + chunkSize)
            _ = validator.feed(ByteBuffer(bytes: body[start..<end]))
            forwarded += validator.takeForwardable().flatMap { Array($0.readableBytesView) }
            start = end
        }
        let decision = validator.finish()
        forwarded += validator.takeForwardable().flatMap { Array($0.readableBytesView) }
        return (decision, forwarded, validator)
    }

    @Test func rawBodyBecomesThePlatformsMultipart() throws {
        for chunk in [Int.max, 1, 3] {
            let (decision, forwarded, validator) = try run("Scan.PNG", Sample.png, chunkSize: chunk)
            let plan = try #require(decision.plan)
            #expect(plan.generatedName == Sample.generated + ".png")
            #expect(plan.upstreamContentType == "multipart/form-data; boundary=raw-boundary")
            #expect(forwarded.count == plan.forwardedLength(clientLength: Sample.png.count))
            let parts = try ParsedParts(forwarded, boundary: "raw-boundary").parts
            #expect(parts.map(\.body) == [Array((Sample.generated + ".png").utf8), Sample.png])
            #expect(parts[1].headers["content-type"] == "image/png")
            #expect(validator.retainedBytes == 0)
        }
    }

    @Test func rawRejections() throws {
        func initCode(_ filename: String, contentLength: Int? = nil) -> String? {
            do throws(UploadRejection) {
                _ = try RawUploadValidator(filename: filename, contentLength: contentLength)
                return nil
            } catch { return error.code }
        }
        #expect(initCode("contract.docx") == "upload-unsupported-type")
        #expect(initCode("../etc/passwd.pdf") == "upload-invalid-filename")
        #expect(initCode("a\u{0}.pdf") == "upload-invalid-filename")
        #expect(initCode("") == "upload-invalid-filename")
        #expect(initCode("a.pdf", contentLength: 26 * 1024 * 1024) == "upload-too-large")
        #expect(initCode("a.pdf", contentLength: 0) == "upload-empty-file")
        #expect(try run("a.pdf", Sample.png).0.rejection?.code == "upload-content-mismatch")
        #expect(try run("a.pdf", Sample.docx, chunkSize: 1).0.rejection?.code == "upload-content-mismatch")
        #expect(try run("a.pdf", []).0.rejection?.code == "upload-empty-file")
        let (big, _, _) = try run("a.pdf", Sample.pdf + [UInt8](repeating: 1, count: 200), chunkSize: 50, limit: 100)
        #expect(big.rejection?.status == 413)
        #expect(RawUploadValidator.filename(fromPathSegment: "my%20scan.pdf") == "my scan.pdf")
    }
}
