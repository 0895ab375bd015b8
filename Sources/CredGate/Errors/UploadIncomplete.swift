/// The one-call WriftAI upload (`PUT /credgate/v1/wriftai/files/{name}`) started but did not finish: the
/// payload of ``GatewayError/uploadIncomplete(_:)``, whose problem document names the upload and what failed, so
/// a client never takes a partial upload for a stored file.
struct UploadIncomplete: Sendable, Equatable {
    /// The platform's upload id, when it gave one.
    var uploadID: String?
    /// The part numbers (1-based, as in the platform's `urls` list) that failed after every retry.
    var failedParts: [Int]
    /// How many parts the upload has (0 when the platform never said).
    var partCount: Int
    /// What went wrong, a fixed sentence: never a library's error text, a header or a URL (a presigned URL is a
    /// credential for as long as it lives).
    var reason: String
    /// The platform's status when it refused a step.
    var platformStatus: Int?

    init(
        uploadID: String?, failedParts: [Int] = [], partCount: Int = 0, reason: String, platformStatus: Int? = nil
    ) {
        self.uploadID = uploadID
        self.failedParts = failedParts
        self.partCount = partCount
        self.reason = reason
        self.platformStatus = platformStatus
    }

    var detail: String {
        var text = "The file was not stored: \(reason)"
        if !failedParts.isEmpty {
            let names = failedParts.map(String.init).joined(separator: ", ")
            text += " Part\(failedParts.count == 1 ? "" : "s") \(names) of \(partCount) failed after every retry."
        }
        return text + " Nothing was completed on the platform; send the file again."
    }

    /// `upload_id`, `failed_parts`, `part_count`, `platform_status`: those that apply.
    var members: [ProblemMember] {
        var members: [ProblemMember] = []
        if let uploadID { members.append(.string("upload_id", uploadID)) }
        members.append(
            ProblemMember("failed_parts", json: "[" + failedParts.map(String.init).joined(separator: ",") + "]"))
        if partCount > 0 { members.append(.number("part_count", partCount)) }
        if let platformStatus { members.append(.number("platform_status", platformStatus)) }
        return members
    }
}
