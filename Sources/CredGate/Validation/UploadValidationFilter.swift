import NIOCore
import NIOHTTP1

/// The `upload_validation` transform: checks an upload (file type by extension and first bytes, one non-empty
/// file, a usable `name`, the size) as it streams in, through a body stage, so the transport holds the body
/// (spooled, encrypted) and nothing reaches the platform unless all of it is good.
///
/// The validator passes bytes on as soon as the file's first bytes are checked,
/// which keeps its own memory to a few bytes; the transport's spool is what holds the body back until the end.
struct UploadValidationFilter: HeadFilter, BodyStageFilter {
    /// The route's body limit.
    let limit: Int
    /// Counts refusals by code for `/credgate/metrics`.
    var rejections: UploadRejectionMetrics? = nil

    /// The request's ``UploadStage`` (the upload-and-attach endpoint reads its captured fields).
    static let stageKey = ScratchKey<UploadStage>("upload.stage")

    func decodeHead(_ head: inout HTTPRequestHead, context: FilterContext) -> FilterHeadResult {
        let contentLength = head.headers.first(name: "content-length").flatMap { Int($0) }
        let options = context.scratch[UploadEndpointOptions.key]
        do throws(UploadRejection) {
            let stage: UploadStage
            if let filename = options?.rawFilename {
                stage = UploadStage(
                    .raw(try RawUploadValidator(filename: filename, contentLength: contentLength, limit: limit)),
                    requiredFields: [], rejections: rejections)
            } else {
                let validator = try UploadValidator(
                    contentType: head.headers.first(name: "content-type"), contentLength: contentLength, limit: limit,
                    captureFields: options?.captureFields ?? false)
                stage = UploadStage(
                    .multipart(validator), requiredFields: options?.requiredFields ?? [], rejections: rejections)
            }
            context.scratch[Self.stageKey] = stage
            return .proceed
        } catch {
            rejections?.record(error.kind)
            return .problem(error.gatewayError, context)
        }
    }

    func bodyStage(for head: HTTPRequestHead, context: FilterContext) -> (any RequestBodyStage)? {
        context.scratch[Self.stageKey]
    }
}

/// What one of credgate's own endpoints asks of the upload filter (set in the request's scratch by the endpoint's
/// filter, which runs first).
final class UploadEndpointOptions: @unchecked Sendable {
    static let key = ScratchKey<UploadEndpointOptions>("upload.options")
    /// A raw upload: the body is the file, named so.
    var rawFilename: String?
    /// Keep the form's text fields (upload-and-attach reads its document fields from them).
    var captureFields = false
    /// Fields that must be present and non-empty.
    var requiredFields: [String] = []

    init(rawFilename: String? = nil, captureFields: Bool = false, requiredFields: [String] = []) {
        self.rawFilename = rawFilename
        self.captureFields = captureFields
        self.requiredFields = requiredFields
    }
}

/// One upload's validator as a body stage.
final class UploadStage: RequestBodyStage, @unchecked Sendable {
    enum Validator {
        case multipart(UploadValidator)
        case raw(RawUploadValidator)
    }

    private var validator: Validator
    private let requiredFields: [String]
    private let rejections: UploadRejectionMetrics?
    /// The accepted plan, once the body is whole.
    private(set) var plan: UploadPlan?

    init(_ validator: Validator, requiredFields: [String], rejections: UploadRejectionMetrics? = nil) {
        self.validator = validator
        self.requiredFields = requiredFields
        self.rejections = rejections
    }

    /// Counts a refusal and turns it into the answer.
    private func refuse(_ rejection: UploadRejection) -> BodyStageResult {
        rejections?.record(rejection.kind)
        return .respond(rejection.gatewayError)
    }

    /// The form's text fields other than `file` and `name` (when captured).
    var textFields: [(name: String, value: String)] {
        if case .multipart(let v) = validator { return v.textFields }
        return []
    }

    func feed(_ chunk: ByteBuffer) -> BodyStageResult {
        let decision: UploadDecision
        switch validator {
        case .multipart(var v):
            decision = v.feed(chunk)
            validator = .multipart(v)
        case .raw(var v):
            decision = v.feed(chunk)
            validator = .raw(v)
        }
        if let rejection = decision.rejection { return refuse(rejection) }
        return .pass(takeForwardable())
    }

    func finish(head: inout HTTPRequestHead) -> BodyStageResult {
        let decision: UploadDecision
        switch validator {
        case .multipart(var v):
            decision = v.finish()
            validator = .multipart(v)
        case .raw(var v):
            decision = v.finish()
            validator = .raw(v)
        }
        if let rejection = decision.rejection { return refuse(rejection) }
        guard let plan = decision.plan else {
            return refuse(UploadRejection(.malformed, "The upload ended before it could be checked."))
        }
        let fields = textFields
        for name in requiredFields where !fields.contains(where: { $0.name == name && !$0.value.isEmpty }) {
            let detail =
                "The form has no '\(name)' field. Send the fields \(requiredFields.map { "'\($0)'" }.joined(separator: ", ")) "
                + "with the file (for example curl -F file=@license.pdf -F \(name)=...). Nothing was uploaded."
            return refuse(UploadRejection(.invalidField, detail))
        }
        self.plan = plan
        if let contentType = plan.upstreamContentType {
            head.headers.replaceOrAdd(name: "content-type", value: contentType)
        }
        return .pass(takeForwardable())
    }

    private func takeForwardable() -> [ByteBuffer] {
        switch validator {
        case .multipart(var v):
            let parts = v.takeForwardable()
            validator = .multipart(v)
            return parts
        case .raw(var v):
            let parts = v.takeForwardable()
            validator = .raw(v)
            return parts
        }
    }
}
