import Foundation

/// `POST /credgate/v1/provider-documents` stored the file but did not attach it to the provider: what happened,
/// and what the client needs to finish alone (the upload's record, its `file_url`, the exact call that attaches
/// it). The payload of ``GatewayError/attachFailed(_:)``, whose problem document carries these as extra members.
enum AttachFailure: Sendable, Equatable {
    /// The platform stored the upload (answering `uploadStatus`) but its answer names no `file_url`.
    case noFileURL(uploadStatus: Int, upload: [UInt8])
    /// The platform answered the attach call with `platformStatus` and `platformAnswer`.
    case refused(platformStatus: Int, platformAnswer: [UInt8], stored: StoredUpload)
    /// The attach call got no answer; `reason` is a fixed sentence (``FollowUpCall/describe(_:)``), never a
    /// library's error text.
    case unreachable(reason: String, stored: StoredUpload)

    /// An upload the platform stored, and the call that would attach it.
    struct StoredUpload: Sendable, Equatable {
        /// The platform's answer to the upload (the file's record).
        var upload: [UInt8]
        var fileURL: String
        /// The path and JSON body of the attach call, for the client to retry it alone.
        var attachPath: String
        var attachBody: String

    }

    /// The platform's own 4xx when it refused the attach call (the client's fields are at fault), else 502.
    var status: Int {
        if case .refused(let platformStatus, _, _) = self, (400..<500).contains(platformStatus) {
            return platformStatus
        }
        return 502
    }

    var detail: String {
        switch self {
        case .noFileURL(let uploadStatus, _):
            return "The platform stored the upload (status \(uploadStatus)) but its answer has no 'file_url', "
                + "so credgate could not attach it. The platform's answer is included."
        case .refused(let platformStatus, _, let stored):
            return
                "The file was uploaded, but the platform refused to attach it to the provider (status \(platformStatus)). "
                + "Nothing is lost: the file is stored at file_url; fix what the platform's answer names and attach it with "
                + "POST \(stored.attachPath) and the body in 'retry'."
        case .unreachable(let reason, let stored):
            return "The file was uploaded, but credgate could not reach the platform to attach it (\(reason)). "
                + "Nothing is lost: the file is stored at file_url; attach it with POST \(stored.attachPath) and the body in 'retry'."
        }
    }

    /// `file_url`, `file` (the upload's record), `platform_status`, `platform_answer`, `retry`: those that apply.
    var members: [ProblemMember] {
        switch self {
        case .noFileURL(_, let upload):
            return [ProblemMember("file", json: Self.embedded(upload))]
        case .refused(let platformStatus, let platformAnswer, let stored):
            return [
                .string("file_url", stored.fileURL), ProblemMember("file", json: Self.embedded(stored.upload)),
                .number("platform_status", platformStatus),
                ProblemMember("platform_answer", json: Self.embedded(platformAnswer)),
                Self.retry(stored),
            ]
        case .unreachable(_, let stored):
            return [
                .string("file_url", stored.fileURL), ProblemMember("file", json: Self.embedded(stored.upload)),
                Self.retry(stored),
            ]
        }
    }

    private static func retry(_ stored: StoredUpload) -> ProblemMember {
        ProblemMember("retry", json: "{\"method\":\"POST\",\"body\":\(stored.attachBody)}")
    }

    /// JSON as is when it parses, else as a string.
    private static func embedded(_ bytes: [UInt8]) -> String {
        if (try? JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])) != nil {
            return String(decoding: bytes, as: UTF8.self)
        }
        return JSONString.quote(String(decoding: bytes, as: UTF8.self))
    }
}
