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
struct ProviderDocumentAttachEndpoint: RequestFilter {
    var inspectsResponses: Bool { true }
    static let path = "/credgate/v1/provider-documents"
    static let requiredFields = ["provider", "document_name", "document_type"]
    /// The upload's answer (a FileRecord) is a few KiB.
    static let answerLimit = 1 << 20

    let uploadPath: String
    let providerDocumentsPath: String
    let attach: FollowUpCall

    func decodeHead(_ head: inout HTTPRequestHead, context: FilterContext) -> FilterHeadResult {
        context.scratch.values[UploadEndpointOptions.key] = UploadEndpointOptions(
            captureFields: true, requiredFields: Self.requiredFields)
        head.uri = uploadPath
        return .proceed
    }

    func responseBufferLimit(for head: HTTPResponseHead, context: FilterContext) -> Int? {
        (200..<300).contains(head.status.code) ? Self.answerLimit : nil
    }

    func encodeResponse(_ head: inout HTTPResponseHead, body: inout ByteBuffer, context: FilterContext) -> ResponseFilterResult {
        guard (200..<300).contains(head.status.code),
              let stage = context.scratch.values[UploadValidationFilter.stageKey] as? UploadStage
        else { return .proceed }
        let record = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any]
        guard let record, let fileURL = record["file_url"] as? String, !fileURL.isEmpty else {
            let detail = "The platform stored the upload (status \(head.status.code)) but its answer has no 'file_url', "
                + "so credgate could not attach it. The platform's answer is included."
            return .respondWith(Self.failure(status: 502, detail: detail, fileURL: nil, upload: body, platformStatus: nil,
                                             platformBody: nil, retryBody: nil, requestID: context.requestID))
        }
        var document: [String: String] = [:]
        for field in stage.textFields where field.name != "name" { document[field.name] = field.value }
        document["document_url"] = fileURL
        let json = Self.json(document)
        let uploadAnswer = body
        let requestID = context.requestID
        let call = attach
        let path = providerDocumentsPath
        let promise = context.eventLoop.makePromise(of: LocalResponse.self)
        promise.completeWithTask {
            do {
                let answer = try await call.send(method: .POST, path: path, json: json, requestID: requestID, on: context.eventLoop)
                if (200..<300).contains(answer.status) {
                    return LocalResponse(status: HTTPResponseStatus(statusCode: answer.status),
                                         headers: ["content-type": "application/json", "x-credgate-file-url": fileURL],
                                         body: ByteBuffer(bytes: answer.body))
                }
                let status = (400..<500).contains(answer.status) ? answer.status : 502
                let detail = "The file was uploaded, but the platform refused to attach it to the provider (status \(answer.status)). "
                    + "Nothing is lost: the file is stored at file_url; fix what the platform's answer names and attach it with "
                    + "POST \(path) and the body in 'retry'."
                return Self.failure(status: status, detail: detail, fileURL: fileURL, upload: uploadAnswer, platformStatus: answer.status,
                                    platformBody: answer.body, retryBody: json, requestID: requestID)
            } catch {
                let detail = "The file was uploaded, but credgate could not reach the platform to attach it (\(FollowUpCall.describe(error))). "
                    + "Nothing is lost: the file is stored at file_url; attach it with POST \(path) and the body in 'retry'."
                return Self.failure(status: 502, detail: detail, fileURL: fileURL, upload: uploadAnswer, platformStatus: nil,
                                    platformBody: nil, retryBody: json, requestID: requestID)
            }
        }
        return .respondLater(promise.futureResult)
    }

    /// A problem document for a half-done upload-and-attach, with what the client needs to finish it.
    static func failure(
        status: Int, detail: String, fileURL: String?, upload: ByteBuffer, platformStatus: Int?, platformBody: [UInt8]?,
        retryBody: String?, requestID: String
    ) -> LocalResponse {
        var members = [
            "\"type\":\"urn:credgate:error:attach-failed\"",
            "\"title\":\"File uploaded but not attached\"",
            "\"status\":\(status)",
            "\"detail\":\(JSONString.quote(detail))",
            "\"request_id\":\(JSONString.quote(requestID))",
        ]
        if let fileURL { members.append("\"file_url\":\(JSONString.quote(fileURL))") }
        members.append("\"file\":\(embedded(Array(upload.readableBytesView)))")
        if let platformStatus { members.append("\"platform_status\":\(platformStatus)") }
        if let platformBody { members.append("\"platform_answer\":\(embedded(platformBody))") }
        if let retryBody { members.append("\"retry\":{\"method\":\"POST\",\"body\":\(retryBody)}") }
        return LocalResponse(
            status: HTTPResponseStatus(statusCode: status),
            headers: ["content-type": "application/problem+json", "x-credgate-error": "attach-failed", "cache-control": "no-store"],
            body: ByteBuffer(string: "{" + members.joined(separator: ",") + "}"))
    }

    /// JSON as is when it parses, else as a string.
    private static func embedded(_ bytes: [UInt8]) -> String {
        if (try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])) != nil {
            return String(decoding: bytes, as: UTF8.self)
        }
        return JSONString.quote(String(decoding: bytes, as: UTF8.self))
    }

    private static func json(_ fields: [String: String]) -> String {
        "{" + fields.sorted { $0.key < $1.key }.map { "\(JSONString.quote($0.key)):\(JSONString.quote($0.value))" }.joined(separator: ",") + "}"
    }
}
