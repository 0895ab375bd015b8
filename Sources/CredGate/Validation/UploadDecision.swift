/// What an upload validator says after each chunk and at the end of the body.
enum UploadDecision: Sendable, Equatable {
    /// Not decided yet: nothing may be forwarded; keep feeding.
    case needMore
    /// The upload is acceptable as far as seen: forward the bytes the validator releases, rewritten per the plan.
    /// After an early accept in ``UploadValidator/Mode/streaming`` mode, later chunks may still turn it into a
    /// ``reject(_:)``; only the answer of `finish()` is final.
    case accept(UploadPlan)
    /// Refused: answer with the rejection; if anything was already forwarded, abort the upstream request.
    case reject(UploadRejection)

    /// The plan when accepted.
    var plan: UploadPlan? {
        if case .accept(let plan) = self { return plan }
        return nil
    }

    /// The rejection when refused.
    var rejection: UploadRejection? {
        if case .reject(let rejection) = self { return rejection }
        return nil
    }
}

/// How credgate will change an accepted upload on its way to the platform.
///
/// For a multipart upload the changes are confined to the head of the body, before the file's bytes: a `name`
/// field inserted before the file part, and the file part's `Content-Type` set to the detected type. The file's
/// own bytes are never touched.
struct UploadPlan: Sendable, Equatable {
    /// The file part's file name, as sent (or the raw upload's file name).
    var filename: String
    /// The type both the extension and the first bytes agree on.
    var fileType: FileType
    /// The `name` field the client sent (the last one, which is the one the platform reads), when seen before
    /// the decision.
    var clientName: String?
    /// The `name` credgate adds because the client sent none: a random UUID plus the original extension,
    /// lower-cased (`1b4e...c9.pdf`).
    var generatedName: String?
    /// The file part's `Content-Type` as sent, `nil` when absent.
    var declaredContentType: String?
    /// The `Content-Type` the file part gets instead, when the declared one is missing or generic
    /// (`application/octet-stream`, `binary/octet-stream`, empty); `nil` leaves the part's headers alone.
    var correctedContentType: String?
    /// Where the file part sits in the client's body (multipart route only).
    var filePart: MultipartPartLayout?
    /// How many bytes longer the forwarded body is than the client's (the inserted field, the header change,
    /// or the raw upload's multipart envelope). Add it to the client's `Content-Length`.
    var bodyLengthDelta: Int
    /// The `Content-Type` the upstream request must carry instead of the client's, when it changes (a raw
    /// upload becomes multipart); `nil` keeps the client's.
    var upstreamContentType: String?

    init(
        filename: String, fileType: FileType, clientName: String? = nil, generatedName: String? = nil,
        declaredContentType: String? = nil, correctedContentType: String? = nil,
        filePart: MultipartPartLayout? = nil, bodyLengthDelta: Int = 0, upstreamContentType: String? = nil
    ) {
        self.filename = filename
        self.fileType = fileType
        self.clientName = clientName
        self.generatedName = generatedName
        self.declaredContentType = declaredContentType
        self.correctedContentType = correctedContentType
        self.filePart = filePart
        self.bodyLengthDelta = bodyLengthDelta
        self.upstreamContentType = upstreamContentType
    }

    /// Whether the client sent no `name` field, so credgate adds ``generatedName``.
    var nameMissing: Bool { generatedName != nil }

    /// Whether the head of a multipart body must be rewritten (see ``MultipartWriter/rewriteHead(_:for:)``).
    var needsRewrite: Bool { filePart != nil && (generatedName != nil || correctedContentType != nil) }

    /// The `name` the platform will store the file under, when known at the decision.
    var name: String? { clientName ?? generatedName }

    /// The upstream `Content-Length` for a client body of `clientLength` bytes.
    func forwardedLength(clientLength: Int) -> Int { clientLength + bodyLengthDelta }
}

/// Byte offsets of one part in a multipart body, counted from the body's first byte.
///
/// ```
/// [CRLF] --boundary CRLF   Header: value CRLF ... CRLF   data ...
/// ^delimiterOffset         ^headersOffset                ^dataOffset
/// ```
struct MultipartPartLayout: Sendable, Equatable {
    /// The part's position among the parts, from 0.
    var index: Int
    /// The first byte of the delimiter line: its leading CRLF when it has one (every part but possibly the first).
    var delimiterOffset: Int
    /// Whether the delimiter starts with CRLF (`false` for a body that opens directly with `--boundary`).
    var delimiterHasLeadingCRLF: Bool
    /// The first byte after the delimiter line's CRLF: the first header line, or the blank line.
    var headersOffset: Int
    /// The first byte of the part's content, after the blank line ending the headers.
    var dataOffset: Int

}
