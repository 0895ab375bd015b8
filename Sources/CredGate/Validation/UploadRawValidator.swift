import Foundation
import NIOCore

/// Checks a raw upload (`PUT /credgate/v1/files/{filename}`, what `curl -T license.pdf` sends) the same way as a
/// multipart one, and turns it into the platform's multipart request as it streams.
///
/// The file name comes from the URL: its extension must be accepted and it must be usable as a name; the body's
/// first bytes must be of that type; the body must not be empty or over the limit. The forwarded body is the
/// envelope's preamble (a generated `name` field and the `file` part's headers), the raw bytes unchanged, then
/// the closing delimiter. The upstream request takes ``UploadPlan/upstreamContentType`` and the client's length
/// plus ``UploadPlan/bodyLengthDelta``.
///
/// Feeding, accepting, ``takeForwardable()`` and late rejections work as in ``UploadValidator``; here the
/// only late rejection is the size limit (and a body that ends short of its
/// `Content-Length`, which the transport sees). A plain value: copies are independent.
struct RawUploadValidator: Sendable {
    typealias Decision = UploadDecision

    let limit: Int
    /// What is sent around the raw bytes.
    let envelope: RawUploadEnvelope
    private var plan: UploadPlan
    private var gate = ForwardGate()
    var decision: Decision { gate.decision }
    /// Body bytes fed so far.
    private(set) var bytesSeen = 0
    private var finished = false
    private var firstBytes: [UInt8] = []

    /// A validator for one raw upload.
    /// - Parameters:
    ///   - filename: the `{filename}` path segment, percent-decoded (see ``filename(fromPathSegment:)``).
    ///   - contentLength: the request's `Content-Length`, when it has one: over `limit` or 0 is refused at once.
    ///   - boundary: the boundary of the multipart body sent upstream.
    init(
        filename: String, contentLength: Int? = nil, limit: Int = UploadValidator.defaultLimit,
        boundary: String = MultipartWriter.makeBoundary(),
        uuid: @escaping @Sendable () -> UUID = { UUID() }
    ) throws(UploadRejection) {
        if let problem = UploadFileName.problem(filename) { throw UploadRejection.invalidFilename(problem) }
        guard let type = FileType(filename: filename) else { throw UploadRejection.unsupportedType(filename: filename) }
        if let contentLength, contentLength > limit {
            throw UploadRejection.tooLarge(limit: limit, declared: contentLength)
        }
        if contentLength == 0 { throw UploadRejection.emptyFile(filename) }
        let name = UploadFileName.generated(for: filename, type: type, uuid: uuid())
        let envelope = MultipartWriter(boundary: boundary).rawUploadEnvelope(filename: filename, type: type, name: name)
        self.limit = limit
        self.envelope = envelope
        self.plan = UploadPlan(
            filename: filename, fileType: type, generatedName: name,
            correctedContentType: type.mimeType, bodyLengthDelta: envelope.overhead,
            upstreamContentType: envelope.contentType)
    }

    /// The file name a `{filename}` path segment stands for (percent-decoded), or `nil` when it does not decode.
    static func filename(fromPathSegment segment: String) -> String? {
        segment.removingPercentEncoding
    }

    /// Body bytes held now: the undecided prefix and
    /// released bytes not yet taken.
    var retainedBytes: Int {
        gate.retainedBytes
    }

    mutating func feed(_ chunk: ByteBuffer) -> Decision {
        if case .reject = decision { return decision }
        if finished { return decision }
        bytesSeen += chunk.readableBytes
        if bytesSeen > limit { return reject(.tooLarge(limit: limit, declared: nil)) }
        guard chunk.readableBytes > 0 else { return decision }
        gate.pass(chunk)
        if firstBytes.count < FileType.sniffLength {
            firstBytes.append(contentsOf: chunk.readableBytesView.prefix(FileType.sniffLength - firstBytes.count))
            if firstBytes.count == FileType.sniffLength, let rejection = checkContent() { return reject(rejection) }
        }
        if gate.isUndecided, firstBytes.count == FileType.sniffLength { accept() }
        return decision
    }

    mutating func finish() -> Decision {
        if case .reject = decision { return decision }
        if finished { return decision }
        finished = true
        if bytesSeen == 0 { return reject(.emptyFile(plan.filename)) }
        if firstBytes.count < FileType.sniffLength, let rejection = checkContent() { return reject(rejection) }
        if gate.isUndecided { accept() }
        gate.append(envelope.epilogue)
        return decision
    }

    mutating func takeForwardable() -> [ByteBuffer] {
        gate.takeForwardable()
    }

    private func checkContent() -> UploadRejection? {
        FileType.detect(firstBytes) == plan.fileType
            ? nil
            : .contentMismatch(filename: plan.filename, expected: plan.fileType, firstBytes: firstBytes)
    }

    private mutating func accept() {
        let (plan, preamble) = (plan, envelope.preamble)
        gate.accept { held in
            held.insert(preamble, at: 0)
            return plan
        }
    }

    private mutating func reject(_ rejection: UploadRejection) -> Decision {
        gate.reject(rejection)
    }
}
