import NIOHTTP1

/// Why credgate refused an upload: a stable ``code``, the HTTP ``status`` and a sentence a person can act on.
///
/// 415 when the file (or the request) is of a type the platform does not take, 413 when the body is over the
/// route's limit, 400 when the multipart framing itself is broken, 422 for a well-formed form with the wrong
/// content (no file, two files, an empty file, a bad `name`).
struct UploadRejection: Error, Sendable, Equatable, CustomStringConvertible {
    /// The class of rejection; its raw value is the stable code (the problem `type`'s last part).
    enum Kind: String, Sendable, CaseIterable {
        /// The request is not `multipart/form-data` (415).
        case notMultipart = "upload-not-multipart"
        /// `multipart/form-data` without a `boundary` parameter (400).
        case missingBoundary = "upload-missing-boundary"
        /// A `boundary` parameter that RFC 2046 does not allow (400).
        case invalidBoundary = "upload-invalid-boundary"
        /// The body does not follow the multipart framing (400).
        case malformed = "upload-malformed"
        /// The body is over the route's size limit (413).
        case tooLarge = "upload-too-large"
        /// No part named `file`, or an empty body (422).
        case missingFile = "upload-missing-file"
        /// More than one file part (422).
        case multipleFiles = "upload-multiple-files"
        /// The file part has no bytes (422).
        case emptyFile = "upload-empty-file"
        /// The `file` part carries no `filename`, so its type cannot be checked (422).
        case missingFilename = "upload-missing-filename"
        /// The file name's extension is not `.pdf`, `.png`, `.jpg` or `.jpeg` (415).
        case unsupportedType = "upload-unsupported-type"
        /// The file's first bytes are not of the type its extension names (415).
        case contentMismatch = "upload-content-mismatch"
        /// The `name` field is empty, too long, or holds a path separator or a control character (422).
        case invalidName = "upload-invalid-name"
        /// The file name of a raw upload (`PUT /credgate/v1/files/{filename}`) is not usable (422).
        case invalidFilename = "upload-invalid-filename"
        /// A form field the endpoint reads is missing, too long or not text (422).
        case invalidField = "upload-invalid-field"

        /// The HTTP status for this kind.
        var status: Int {
            switch self {
            case .notMultipart, .unsupportedType, .contentMismatch: return 415
            case .tooLarge: return 413
            case .missingBoundary, .invalidBoundary, .malformed: return 400
            case .missingFile, .multipleFiles, .emptyFile, .missingFilename, .invalidName, .invalidFilename,
                .invalidField:
                return 422
            }
        }

        /// A short title for the problem document.
        var title: String {
            switch self {
            case .notMultipart: return "Upload is not multipart/form-data"
            case .missingBoundary: return "Multipart boundary missing"
            case .invalidBoundary: return "Multipart boundary not valid"
            case .malformed: return "Malformed multipart body"
            case .tooLarge: return "Upload too large"
            case .missingFile: return "No file in the upload"
            case .multipleFiles: return "More than one file in the upload"
            case .emptyFile: return "Empty file"
            case .missingFilename: return "File without a file name"
            case .unsupportedType: return "Unsupported file format"
            case .contentMismatch: return "File content does not match its extension"
            case .invalidName: return "Invalid name field"
            case .invalidFilename: return "Invalid file name"
            case .invalidField: return "Invalid form field"
            }
        }
    }

    let kind: Kind
    /// A sentence a person understands, naming the file and what to do; never echoes more than a file name.
    let detail: String

    init(_ kind: Kind, _ detail: String) {
        self.kind = kind
        self.detail = detail
    }

    var status: Int { kind.status }
    var code: String { kind.rawValue }
    var title: String { kind.title }
    var description: String { "\(status) \(code): \(detail)" }

    /// The rejection as a case of the gateway's catalogue, for a filter's answer.
    var gatewayError: GatewayError { .upload(self) }
}

extension UploadRejection: GatewayProblem {
    var httpStatus: HTTPResponseStatus { HTTPResponseStatus(statusCode: status) }
}

// MARK: - The sentences, in one place

extension UploadRejection {
    static func notMultipart(_ contentType: String?) -> Self {
        let what = contentType.map { "'\(UploadHeaderSyntax.clip($0))'" } ?? "no Content-Type"
        return .init(
            .notMultipart,
            "Uploads must be sent as multipart/form-data with the document in a part named 'file' (for example curl -F file=@license.pdf), but this request has \(what)."
        )
    }

    static let missingBoundary = Self(
        .missingBoundary,
        "The Content-Type is multipart/form-data but has no boundary parameter, so the parts cannot be told apart. Let your HTTP client set the Content-Type for multipart bodies instead of writing it by hand."
    )

    static func invalidBoundary(_ boundary: String) -> Self {
        .init(
            .invalidBoundary,
            "The multipart boundary '\(UploadHeaderSyntax.clip(boundary))' is not valid: it must be 1 to 70 letters, digits or '()+_,-./:=? characters and must not end with a space."
        )
    }

    static func malformed(_ what: String) -> Self {
        .init(.malformed, "The request body is not valid multipart/form-data: \(what).")
    }

    static func tooLarge(limit: Int, declared: Int?) -> Self {
        let size = declared.map { "is \(UploadHeaderSyntax.formatBytes($0)), which is" } ?? "is"
        return .init(
            .tooLarge,
            "The upload \(size) over this route's limit of \(UploadHeaderSyntax.formatBytes(limit)); it was not uploaded."
        )
    }

    static let emptyBody = Self(
        .missingFile,
        "The request body is empty: it should be multipart/form-data with the document in a part named 'file'.")

    static let noFilePart = Self(
        .missingFile,
        "The upload has no part named 'file': send the document in a form field named 'file' (for example curl -F file=@license.pdf)."
    )

    static func fileInOtherField(_ field: String) -> Self {
        .init(
            .missingFile,
            "The file was sent in the form field '\(UploadHeaderSyntax.clip(field))', but the platform expects it in a field named 'file'."
        )
    }

    static let multipleFiles = Self(
        .multipleFiles,
        "The upload contains more than one file; the platform takes exactly one file per upload, in the part named 'file'. Upload the files one at a time."
    )

    static func emptyFile(_ filename: String) -> Self {
        .init(.emptyFile, "The file '\(UploadHeaderSyntax.clip(filename))' is empty (0 bytes); it was not uploaded.")
    }

    static let missingFilename = Self(
        .missingFilename,
        "The 'file' part has no file name, so its type cannot be checked: send it as a file (for example curl -F file=@license.pdf), not as a text field."
    )

    /// The SDK's own sentence, so users recognise it: "Unsupported file format: '.docx'. Assured only accepts ...".
    static func unsupportedType(filename: String) -> Self {
        if let ext = FileType.fileExtension(of: filename) {
            return .init(
                .unsupportedType,
                "Unsupported file format: '.\(UploadHeaderSyntax.clip(ext))'. \(FileType.acceptedSentence)")
        }
        return .init(
            .unsupportedType,
            "Unsupported file format: the file name '\(UploadHeaderSyntax.clip(filename))' has no extension. \(FileType.acceptedSentence)"
        )
    }

    static func contentMismatch(filename: String, expected: FileType, firstBytes: [UInt8]) -> Self {
        let name = UploadHeaderSyntax.clip(filename)
        if let actual = FileType.detect(firstBytes) {
            return .init(
                .contentMismatch,
                "The file '\(name)' is named as a \(expected.displayName) but its content is \(actual.phrase); rename it to .\(actual.preferredExtension) or upload the intended file."
            )
        }
        let found = FileType.describeContent(firstBytes)
        return .init(
            .contentMismatch,
            "The file '\(name)' is named as a \(expected.displayName) but its content is \(found), not \(expected.phrase). \(FileType.acceptedSentence)"
        )
    }

    static func invalidName(_ problem: String) -> Self {
        .init(
            .invalidName,
            "The 'name' field \(problem). Send a plain file name such as 'license.pdf', or leave the field out and credgate will generate one."
        )
    }

    static func invalidFilename(_ problem: String) -> Self {
        .init(
            .invalidFilename,
            "The file name in the URL \(problem). Use a plain file name such as /credgate/v1/files/license.pdf.")
    }
}
