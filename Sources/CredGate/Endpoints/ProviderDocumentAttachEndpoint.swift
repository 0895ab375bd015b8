import Foundation
import NIOCore
import NIOHTTP1

/// `POST /credgate/v1/provider-documents`: upload a file and attach it to a provider in one call, for clients
/// that are not the SDK (`curl -F file=@license.pdf -F provider=... -F document_name=... -F document_type=...`).
///
/// 1. The form is checked like any upload, and must also carry `provider`, `document_name` and `document_type`;
///    nothing is sent before all of it is good.
/// 2. The upload goes to the platform through the upload route (this filter runs first on a copy of its chain).
/// 3. With the answer's `file_url`, credgate creates the provider document through the provider-documents route:
///    `{"provider", "document_name", "document_type", "document_url": file_url, ...}` with every other text field
///    of the form (not `name`) added as a string.
/// 4. The client gets the platform's 201 document. If step 3 fails, the answer says so and carries the uploaded
///    file's record and `file_url`, and the exact call that attaches it, so nothing is lost and the step can be
///    retried alone. If the upload itself fails, its answer is passed on unchanged.
///
/// The document fields also travel with the upload form; the platform ignores fields it does not read.
struct ProviderDocumentAttachEndpoint: HeadFilter, ResponseFilter {
    static let path = "/credgate/v1/provider-documents"
    static let requiredFields = ["provider", "document_name", "document_type"]
    /// The upload's answer (a FileRecord) is a few KiB.
    static let answerLimit = 1 << 20

    let uploadPath: String
    let providerDocumentsPath: String
    let attach: FollowUpCall

    func decodeHead(_ head: inout HTTPRequestHead, context: FilterContext) -> FilterHeadResult {
        context.scratch[UploadEndpointOptions.key] = UploadEndpointOptions(
            captureFields: true, requiredFields: Self.requiredFields)
        head.uri = uploadPath
        return .proceed
    }

    func responseBufferLimit(for head: HTTPResponseHead, context: FilterContext) -> Int? {
        (200..<300).contains(head.status.code) ? Self.answerLimit : nil
    }

    func encodeResponse(_ head: inout HTTPResponseHead, body: inout ByteBuffer, context: FilterContext)
        -> ResponseFilterResult
    {
        guard (200..<300).contains(head.status.code),
            let stage = context.scratch[UploadValidationFilter.stageKey]
        else { return .proceed }
        let record = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any]
        guard let record, let fileURL = record["file_url"] as? String, !fileURL.isEmpty else {
            let failure = AttachFailure.noFileURL(
                uploadStatus: Int(head.status.code), upload: Array(body.readableBytesView))
            return .respondWith(.problem(.attachFailed(failure), requestID: context.requestID))
        }
        var document: [String: String] = [:]
        for field in stage.textFields where field.name != "name" { document[field.name] = field.value }
        document["document_url"] = fileURL
        let json = Self.json(document)
        let stored = AttachFailure.StoredUpload(
            upload: Array(body.readableBytesView), fileURL: fileURL,
            attachPath: providerDocumentsPath, attachBody: json)
        let requestID = context.requestID
        let call = attach
        let path = providerDocumentsPath
        let promise = context.eventLoop.makePromise(of: LocalResponse.self)
        promise.completeWithTask {
            do {
                let answer = try await call.send(
                    method: .POST, path: path, json: json, requestID: requestID, on: context.eventLoop)
                if (200..<300).contains(answer.status) {
                    return LocalResponse(
                        status: HTTPResponseStatus(statusCode: answer.status),
                        headers: ["content-type": "application/json", "x-credgate-file-url": fileURL],
                        body: ByteBuffer(bytes: answer.body))
                }
                let failure = AttachFailure.refused(
                    platformStatus: answer.status, platformAnswer: answer.body, stored: stored)
                return .problem(.attachFailed(failure), requestID: requestID)
            } catch {
                let failure = AttachFailure.unreachable(reason: FollowUpCall.describe(error), stored: stored)
                return .problem(.attachFailed(failure), requestID: requestID)
            }
        }
        return .respondLater(promise.futureResult)
    }

    private static func json(_ fields: [String: String]) -> String {
        "{"
            + fields.sorted { $0.key < $1.key }.map { "\(JSONString.quote($0.key)):\(JSONString.quote($0.value))" }
            .joined(separator: ",") + "}"
    }
}
