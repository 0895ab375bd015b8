import Foundation
import MultipartKit
import NIOCore

/// Checks one `multipart/form-data` upload (`POST /api/v1/files/handle/`) while its body streams in, and says
/// as early as it safely can whether the body may be forwarded.
///
/// What it checks: exactly one file part, named `file`, with a file name whose extension is `.pdf`, `.png`,
/// `.jpg` or `.jpeg` (any case) and whose first bytes are of that type; not empty; a `name` field, when sent,
/// usable as a file name; well-formed framing closed by `--boundary--`; at most `limit` body bytes. What it
/// plans: a generated `name` when the client sent none, and the detected `Content-Type` on the file part when the
/// declared one is missing or generic (``UploadPlan``).
///
/// ## Feeding it
/// Create one per request from the request head (the initialiser already refuses a request that is not
/// multipart, has no boundary, or declares a `Content-Length` over the limit), then `feed` every body chunk and
/// call `finish` at the end of the body. After each call, forward what ``takeForwardable()`` returns (nothing
/// until accepted); it is the client's body with the head rewritten per the plan, so add
/// ``UploadPlan/bodyLengthDelta`` to the client's `Content-Length` before sending the upstream head. The
/// validator keeps the undecided prefix itself; the transport must not forward chunks on its own.
///
/// ## When it accepts
/// It accepts as soon as the file part's headers and first ``FileType/sniffLength`` bytes have been seen
/// (everything before the file part is held until then, usually one chunk). Most rejections come before that
/// point, and then nothing was sent. But some can only come later: a second file part, a bad `name` field after
/// the file part, broken framing or a missing closing boundary, and the size limit. Such a **late rejection means
/// the upstream request is already under way and must be aborted** (close the upstream connection without
/// finishing the body, so the platform sees an incomplete request, never a complete one), and the client gets the
/// rejection. Only `finish()`'s answer is final. Memory: a few bytes per request. (A route that must send nothing
/// unless the whole body is good spools it: the transport's body stage holds it in an encrypted file, not here.)
///
/// A `name` field after the file part (rare: SDKs, curl and browsers send fields in order) cannot be seen in
/// before the decision; credgate then inserts a generated name before the file part and the
/// client's later one follows it. Django reads the last value of a repeated field, so the client's name is the
/// one stored (inferred from Django's `QueryDict`).
///
/// ## Copies
/// The validator wraps MultipartKit's `MultipartParser`, a class, so copies of a validator share one state: a
/// copy read out of `RequestScratch`, fed and never written back still advances the request's validator. Use one
/// per request, on the connection's event loop only (hence `@unchecked Sendable`, like `RequestScratch`).
struct UploadValidator: @unchecked Sendable {
    typealias Decision = UploadDecision

    /// 25 MiB, the route default.
    static let defaultLimit = 25 * 1024 * 1024

    private var engine: Engine

    /// A validator for one request.
    /// - Parameters:
    ///   - contentType: the request's `Content-Type`; it must be `multipart/form-data` with a valid boundary.
    ///   - contentLength: the request's `Content-Length`, when it has one: a larger one than `limit` is refused
    ///     at once (413), so the body need not even be read.
    ///   - limit: the most body bytes accepted.
    ///   - uuid: where generated names get their UUID (tests make it deterministic).
    init(
        contentType: String?, contentLength: Int? = nil, limit: Int = UploadValidator.defaultLimit,
        captureFields: Bool = false,
        uuid: @escaping @Sendable () -> UUID = { UUID() }
    ) throws(UploadRejection) {
        let parsed = try UploadContentType(contentType)
        if let contentLength, contentLength > limit {
            throw UploadRejection.tooLarge(limit: limit, declared: contentLength)
        }
        if contentLength == 0 { throw UploadRejection.emptyBody }
        engine = Engine(boundary: parsed.boundary, limit: limit, captureFields: captureFields, uuid: uuid)
    }

    /// The text fields other than `file` and `name`, in order, when the validator was made with
    /// `captureFields` (the one-call upload-and-attach endpoint reads its document fields from them). At most
    /// ``maxCapturedFields`` fields of at most ``maxCapturedFieldBytes`` bytes each: more is a rejection.
    var textFields: [(name: String, value: String)] { engine.textFields }
    static let maxCapturedFields = 32
    static let maxCapturedFieldBytes = 4096

    /// The request's multipart boundary.
    var boundary: String { engine.boundary }
    var limit: Int { engine.limit }
    /// The latest decision (``UploadDecision/needMore`` before the first one).
    var decision: Decision { engine.decision }
    /// Body bytes fed so far.
    var bytesSeen: Int { engine.bytesSeen }
    /// Body bytes the validator holds now: the undecided prefix and
    /// released bytes not yet taken, plus the few bytes it keeps of the `name` field and the file's first bytes.
    var retainedBytes: Int { engine.retainedBytes }

    /// Takes the next body chunk; see the type's documentation for what each decision asks of the transport.
    mutating func feed(_ chunk: ByteBuffer) -> Decision { engine.feed(chunk) }

    /// The body ended: the final decision.
    mutating func finish() -> Decision { engine.finish() }

    /// The bytes that may now be sent upstream, in order, and forgets them. Empty until accepted; after a
    /// rejection, always empty.
    mutating func takeForwardable() -> [ByteBuffer] { engine.takeForwardable() }
}

// MARK: - The engine

extension UploadValidator {
    /// All of a validator's state, in one place the parser's callbacks can reach.
    fileprivate final class Engine {
        private enum Role { case name, file, other }

        /// What is known of the part being parsed.
        private struct PartState {
            var headersDone = false
            var disposition: UploadContentDisposition?
            var contentType: String?
            var role: Role = .other
            var nameBytes: [UInt8] = []
            var fieldBytes: [UInt8] = []
        }

        /// What is known of the (first) file part.
        private struct FileState {
            let partIndex: Int
            let filename: String
            let type: FileType
            var declaredContentType: String?
            var layout: MultipartPartLayout?
            var firstBytes: [UInt8] = []
            var size = 0
            var checked = false
        }

        let boundary: String
        let limit: Int
        let captureFields: Bool
        private(set) var textFields: [(name: String, value: String)] = []
        private let uuid: @Sendable () -> UUID
        private let parser: MultipartParser
        private var framing: UploadFraming

        private var gate = ForwardGate()
        var decision: UploadDecision { gate.decision }
        private var finished = false
        private(set) var bytesSeen = 0
        /// Bytes given to the framing and the parser (at most `limit`).
        private var processed = 0
        private var parserFailed = false
        /// The parser is not being fed while the framing skips through the file's content.
        private var parserDetached = false

        private var rejection: UploadRejection?
        private var partIndex = 0
        private var part = PartState()
        private var file: FileState?
        private var fileParts = 0
        private var clientName: String?
        /// The plan fixed when the file's first bytes passed.
        private var streamingPlan: UploadPlan?

        init(boundary: String, limit: Int, captureFields: Bool, uuid: @escaping @Sendable () -> UUID) {
            self.boundary = boundary
            self.limit = limit
            self.captureFields = captureFields
            self.uuid = uuid
            self.parser = MultipartParser(boundary: boundary)
            self.framing = UploadFraming(boundary: boundary)
            parser.onHeader = { [unowned self] name, value in self.header(name, value) }
            parser.onBody = { [unowned self] body in self.body(body) }
            parser.onPartComplete = { [unowned self] in self.partComplete() }
        }

        var retainedBytes: Int {
            gate.retainedBytes
                + part.nameBytes.count + (file?.firstBytes.count ?? 0)
        }

        func feed(_ input: ByteBuffer) -> UploadDecision {
            if case .reject = decision { return decision }
            if finished { return decision }
            bytesSeen += input.readableBytes
            var chunk = input
            // Only the bytes within the limit are looked at, so that which rejection comes first does not
            // depend on how the body was cut into chunks.
            let room = limit - processed
            let overLimit = chunk.readableBytes > room
            if overLimit { chunk = chunk.getSlice(at: chunk.readerIndex, length: room)! }
            if chunk.readableBytes > 0 {
                processed += chunk.readableBytes
                gate.pass(chunk)
                process(chunk)
            }
            if rejection == nil && overLimit { rejection = .tooLarge(limit: limit, declared: nil) }
            if let rejection { return reject(rejection) }
            if gate.isUndecided, let plan = streamingPlan { accept(plan) }
            return decision
        }

        func finish() -> UploadDecision {
            if case .reject = decision { return decision }
            if finished { return decision }
            finished = true
            if let rejection { return reject(rejection) }
            if processed == 0 { return reject(.emptyBody) }
            if let problem = framing.endProblem { return reject(problem) }
            guard let file else { return reject(.noFilePart) }
            guard file.checked, let plan = streamingPlan ?? makePlan() else {
                return reject(.malformed("the file part is incomplete"))
            }
            if gate.isUndecided { accept(plan) }
            return decision
        }

        func takeForwardable() -> [ByteBuffer] {
            gate.takeForwardable()
        }

        // MARK: Driving the framing and the parser

        private func process(_ chunk: ByteBuffer) {
            let chunkOffset = framing.offset
            let wasClosed = framing.isClosed
            let failedAt = chunk.withUnsafeReadableBytes { self.framing.scan($0) }
            if !wasClosed && !parserFailed {
                // The parser sees only the bytes before a framing failure, so the earliest problem wins.
                var end = failedAt ?? chunk.readableBytes
                var start = 0
                if parserDetached {
                    // Skipping the file's content: rejoin at the delimiter that ends it, if it is in this chunk.
                    // Whatever partial match the parser was left in, a CR restarts its matching.
                    if let delimiterEnd = framing.delimiterEnds.first {
                        parserDetached = false
                        runParser(ByteBuffer(bytes: framing.delimiterBytes))
                        start = delimiterEnd - chunkOffset
                    } else {
                        end = start
                    }
                }
                if end > start { runParser(chunk.getSlice(at: chunk.readerIndex + start, length: end - start)!) }
            }
            if rejection == nil, let failure = framing.failure { rejection = failure.rejection }
            framing.dropLayouts(before: partIndex, keeping: file?.partIndex)
            // Once the file's first bytes have passed, its content only needs the framing's fast scan for the
            // delimiter that ends it: MultipartKit's byte-by-byte parser is left out until then.
            if let file, file.checked, partIndex == file.partIndex, framing.isInBody, rejection == nil {
                parserDetached = true
            }
        }

        private func runParser(_ buffer: ByteBuffer) {
            guard !parserFailed else { return }
            do {
                try parser.execute(buffer)
            } catch {
                parserFailed = true
                if rejection == nil {
                    rejection = .malformed("a boundary line or a part's headers do not follow the multipart syntax")
                }
            }
        }

        private func reject(_ rejection: UploadRejection) -> UploadDecision {
            self.rejection = rejection
            part.nameBytes = []
            file?.firstBytes = []
            return gate.reject(rejection)
        }

        /// The plan as things stand: it is taken the moment the file's first bytes pass, so it
        /// does not depend on how much more the chunk in hand happened to hold.
        private func makePlan() -> UploadPlan? {
            guard let file else { return nil }
            return UploadPlan(
                filename: file.filename,
                fileType: file.type,
                clientName: clientName,
                generatedName: clientName == nil
                    ? UploadFileName.generated(for: file.filename, type: file.type, uuid: uuid()) : nil,
                declaredContentType: file.declaredContentType,
                correctedContentType: FileType.isGenericMIMEType(file.declaredContentType) ? file.type.mimeType : nil,
                filePart: file.layout)
        }

        private func accept(_ plan: UploadPlan) {
            let boundary = boundary
            gate.accept { forward in Self.release(&forward, plan: plan, boundary: boundary) }
        }

        /// The held chunks as they go out: the file part's head rewritten when the plan says so.
        private static func release(_ forward: inout [ByteBuffer], plan: UploadPlan, boundary: String) -> UploadPlan {
            var plan = plan
            if plan.needsRewrite, let layout = plan.filePart {
                // Join the chunks that hold the head (usually the first one alone), rewrite them, keep the rest.
                var headChunks = 0
                var headLength = 0
                while headLength < layout.dataOffset {
                    headLength += forward[headChunks].readableBytes
                    headChunks += 1
                }
                var head = forward[0]
                for index in 1..<headChunks {
                    var next = forward[index]
                    head.writeBuffer(&next)
                }
                let rewritten = MultipartWriter(boundary: boundary).rewriteHead(head, for: plan)
                plan.bodyLengthDelta = rewritten.readableBytes - head.readableBytes
                forward.replaceSubrange(0..<headChunks, with: [rewritten])
            }
            return plan
        }

        // MARK: Parser callbacks

        private func header(_ name: String, _ value: String) {
            guard rejection == nil else { return }
            switch name.lowercased() {
            case "content-disposition":
                guard part.disposition == nil else {
                    rejection = .malformed("a part has two Content-Disposition headers")
                    return
                }
                guard let disposition = UploadContentDisposition(value) else {
                    rejection = .malformed("a part's Content-Disposition is not 'form-data' with a name")
                    return
                }
                part.disposition = disposition
                classify(disposition)
            case "content-type":
                part.contentType = String(UploadHeaderSyntax.trim(value))
            default:
                break
            }
        }

        /// Decides what the part is from its Content-Disposition, and refuses a bad file name at once.
        private func classify(_ disposition: UploadContentDisposition) {
            if disposition.filename != nil || disposition.name == "file" {
                fileParts += 1
                guard fileParts == 1 else {
                    rejection = .multipleFiles
                    return
                }
                guard disposition.name == "file" else {
                    rejection = .fileInOtherField(disposition.name)
                    return
                }
                guard let filename = disposition.filename, !filename.isEmpty else {
                    rejection = .missingFilename
                    return
                }
                guard let type = FileType(filename: filename) else {
                    rejection = .unsupportedType(filename: filename)
                    return
                }
                file = FileState(partIndex: partIndex, filename: filename, type: type)
                part.role = .file
            } else if disposition.name == "name" {
                part.role = .name
            }
        }

        private func headersDone() {
            part.headersDone = true
            guard part.disposition != nil else {
                rejection = .malformed("a part has no Content-Disposition header")
                return
            }
            if part.role == .file, var current = file {
                current.declaredContentType = part.contentType
                current.layout = framing.layout(ofPart: partIndex)
                file = current
                if current.layout == nil { rejection = .malformed("the file part could not be located") }
            }
        }

        private func body(_ buffer: ByteBuffer) {
            guard rejection == nil else { return }
            if !part.headersDone {
                headersDone()
                guard rejection == nil else { return }
            }
            switch part.role {
            case .name:
                let room = UploadFileName.maxBytes + 1 - part.nameBytes.count
                if room > 0 { part.nameBytes.append(contentsOf: buffer.readableBytesView.prefix(room)) }
            case .file:
                guard var current = file else { return }
                current.size += buffer.readableBytes
                let room = FileType.sniffLength - current.firstBytes.count
                if room > 0 { current.firstBytes.append(contentsOf: buffer.readableBytesView.prefix(room)) }
                file = current
                if !current.checked && current.firstBytes.count >= FileType.sniffLength { checkContent() }
            case .other:
                if captureFields {
                    let room = UploadValidator.maxCapturedFieldBytes + 1 - part.fieldBytes.count
                    if room > 0 { part.fieldBytes.append(contentsOf: buffer.readableBytesView.prefix(room)) }
                }
            }
        }

        private func partComplete() {
            guard rejection == nil else { return }
            if !part.headersDone {
                headersDone()
                guard rejection == nil else { return }
            }
            switch part.role {
            case .name:
                if let problem = UploadFileName.problem(part.nameBytes) {
                    rejection = .invalidName(problem)
                } else {
                    clientName = String(decoding: part.nameBytes, as: UTF8.self)
                }
            case .file:
                if let current = file, current.size == 0 {
                    rejection = .emptyFile(current.filename)
                } else if file?.checked == false {
                    checkContent()
                }
            case .other:
                if captureFields, let name = part.disposition?.name {
                    if part.fieldBytes.count > UploadValidator.maxCapturedFieldBytes {
                        rejection = UploadRejection(
                            .invalidField,
                            "The field '\(name)' is longer than \(UploadValidator.maxCapturedFieldBytes) bytes.")
                    } else if textFields.count >= UploadValidator.maxCapturedFields {
                        rejection = UploadRejection(
                            .invalidField, "The form has more than \(UploadValidator.maxCapturedFields) fields.")
                    } else if let value = String(validating: part.fieldBytes, as: UTF8.self) {
                        textFields.append((name, value))
                    } else {
                        rejection = UploadRejection(.invalidField, "The field '\(name)' is not UTF-8 text.")
                    }
                }
            }
            partIndex += 1
            part = PartState()
        }

        /// The first bytes must be of the type the extension names.
        private func checkContent() {
            guard var current = file else { return }
            if FileType.detect(current.firstBytes) == current.type {
                current.checked = true
                file = current
                streamingPlan = makePlan()
            } else {
                rejection = .contentMismatch(
                    filename: current.filename, expected: current.type, firstBytes: current.firstBytes)
            }
        }
    }
}
