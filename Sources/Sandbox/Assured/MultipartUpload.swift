import Crypto
import Hummingbird

/// A `multipart/form-data` body read as it streams in, the way Django's `MultiPartParser` sorts it: parts with a
/// filename are files, parts without one are text fields, parts without a `form-data` disposition are dropped, and
/// a repeated name keeps its last value (what `request.data[name]` gives).
///
/// File parts are kept whole (the sandbox stores them) and hashed as they arrive; text fields are capped.
final class MultipartUpload {
    /// A file part, complete.
    struct FilePart {
        /// The filename as sent, reduced to its last path component as Django does.
        var filename: String
        /// The part's `Content-Type` exactly as received; nil when it had none.
        var contentType: String?
        var bytes: ByteBuffer
        var sha256: String
        var md5: String
    }

    enum Failure: Error, Equatable {
        /// The framing or a part's header block is malformed.
        case syntax
        /// A part's header block beyond ``MultipartFraming/headerLimit``.
        case headersTooLarge
        /// The body ended inside a part.
        case truncated
        /// A text field beyond ``textLimit``.
        case fieldTooLarge(String)

        /// Django's wording, as DRF's `ParseError` wraps it.
        var message: String {
            switch self {
            case .syntax: "Multipart form parse error - Invalid multipart body."
            case .headersTooLarge: "Multipart form parse error - Part headers are too large."
            case .truncated: "Multipart form parse error - Request body ended before the closing boundary."
            case .fieldTooLarge(let name): "Multipart form parse error - Field \"\(name)\" is too large."
            }
        }
    }

    /// Largest text field kept (Django refuses much larger in-memory form data too).
    static let textLimit = 64 * 1024

    private(set) var files: [String: FilePart] = [:]
    private(set) var texts: [String: String] = [:]

    /// The part being read. Its bytes live in the properties below rather than in the enum, so appending never
    /// copies a buffer that an enum payload still shares.
    private enum Current {
        /// Headers seen, no body byte yet: not decided.
        case headers
        case file(field: String, filename: String, contentType: String?)
        case text(field: String)
        case ignored
    }

    private var framing: MultipartFraming
    private var headers: [(name: String, value: String)] = []
    private var current: Current?
    private var fileBytes = ByteBuffer()
    private var sha256 = SHA256()
    private var md5 = Insecure.MD5()
    private var textBytes: [UInt8] = []
    private var failure: Failure?

    /// `boundary` must not be empty (``boundary(ofContentType:)`` guarantees it).
    init(boundary: String) {
        framing = MultipartFraming(boundary: boundary)
    }

    /// Parses the next piece of the body.
    func feed(_ buffer: ByteBuffer) throws(Failure) {
        do {
            try framing.feed(buffer) { event in
                switch event {
                case .headers(let fields):
                    headers = fields
                    current = .headers
                case .body(var slice):
                    body(&slice)
                case .partEnd:
                    completePart()
                }
            }
        } catch .headersTooLarge {
            throw .headersTooLarge
        } catch {
            throw .syntax
        }
        if let failure { throw failure }
    }

    /// Call once the body has ended: throws when it ended inside a part.
    func finish() throws(Failure) {
        if let failure { throw failure }
        if framing.isInsidePart { throw .truncated }
    }

    // MARK: Parts

    private func body(_ slice: inout ByteBuffer) {
        decideIfNeeded()
        switch current {
        case .file:
            slice.withUnsafeReadableBytes { raw in
                sha256.update(bufferPointer: raw)
                md5.update(bufferPointer: raw)
            }
            fileBytes.writeBuffer(&slice)
        case .text(let field):
            guard textBytes.count + slice.readableBytes <= Self.textLimit else {
                failure = failure ?? .fieldTooLarge(field)
                current = .ignored
                return
            }
            textBytes += slice.readableBytesView
        default:
            break
        }
    }

    private func completePart() {
        decideIfNeeded()
        switch current {
        case .file(let field, let filename, let contentType):
            files[field] = FilePart(
                filename: filename, contentType: contentType, bytes: fileBytes,
                sha256: sha256.finalize().hexString, md5: md5.finalize().hexString)
            texts[field] = nil
        case .text(let field):
            texts[field] = String(decoding: textBytes, as: UTF8.self)
            files[field] = nil
        default:
            break
        }
        current = nil
        headers = []
        fileBytes = ByteBuffer()
        textBytes = []
    }

    /// Sorts the part whose headers were just read, from its `Content-Disposition`, on its first body byte (or
    /// its end, when it has none).
    private func decideIfNeeded() {
        switch current {
        case nil, .headers: break
        default: return
        }
        current = .ignored
        guard let disposition = header("content-disposition").map(ContentDisposition.init),
            disposition.type == "form-data", let field = disposition.parameters["name"]
        else { return }
        guard let filename = disposition.filename else {
            current = .text(field: field)
            return
        }
        // Django leaves out a file input that was submitted empty (no filename).
        let base = Self.lastPathComponent(filename)
        guard !base.isEmpty else { return }
        current = .file(field: field, filename: base, contentType: header("content-type"))
        fileBytes = ByteBuffer()
        sha256 = SHA256()
        md5 = Insecure.MD5()
    }

    private func header(_ name: String) -> String? {
        headers.last { $0.name.lowercased() == name }?.value
    }

    /// Django keeps what follows the last `/` or `\` (browsers that send a full path).
    static func lastPathComponent(_ filename: String) -> String {
        String(filename.split(separator: "/", omittingEmptySubsequences: false).last ?? "")
            .split(separator: "\\", omittingEmptySubsequences: false).last.map(String.init) ?? ""
    }

    /// The boundary of a `multipart/form-data` content type; nil when the type is not multipart/form-data.
    /// `.some(nil)` when it is, but names no usable boundary (missing, empty or longer than RFC 2046's 70).
    static func boundary(ofContentType value: String) -> String?? {
        let parsed = ContentDisposition(value)
        guard parsed.type == "multipart/form-data" else { return nil }
        guard let boundary = parsed.parameters["boundary"], (1...70).contains(boundary.utf8.count) else {
            return .some(nil)
        }
        return .some(boundary)
    }
}

/// A header value of the form `type; name=value; name="quoted value"` (Content-Disposition, Content-Type), with
/// parameter names lower-cased and RFC 5987 `filename*=UTF-8''...` decoded.
struct ContentDisposition {
    var type: String
    var parameters: [String: String] = [:]

    /// `filename*` when present and decodable (Django prefers it), else `filename`.
    var filename: String? {
        parameters["filename*"] ?? parameters["filename"]
    }

    init(_ value: String) {
        var parts: [String] = []
        var part = ""
        var quoted = false
        var escaped = false
        for character in value {
            if escaped {
                part.append(character)
                escaped = false
            } else if quoted && character == "\\" {
                part.append(character)
                escaped = true
            } else if character == "\"" {
                part.append(character)
                quoted.toggle()
            } else if character == ";" && !quoted {
                parts.append(part)
                part = ""
            } else {
                part.append(character)
            }
        }
        parts.append(part)
        type = String(parts[0].trimmingASCIIWhitespace()).lowercased()
        for raw in parts.dropFirst() {
            guard let eq = raw.firstIndex(of: "=") else { continue }
            let name = String(String(raw[..<eq]).trimmingASCIIWhitespace()).lowercased()
            var value = String(String(raw[raw.index(after: eq)...]).trimmingASCIIWhitespace())
            if value.count >= 2 && value.hasPrefix("\"") && value.hasSuffix("\"") {
                value = Self.unquote(value.dropFirst().dropLast())
            }
            if name.hasSuffix("*") {
                // RFC 5987: charset'language'percent-encoded; only UTF-8 is decoded, anything else is dropped.
                let pieces = value.split(separator: "'", maxSplits: 2, omittingEmptySubsequences: false)
                guard pieces.count == 3, pieces[0].lowercased() == "utf-8",
                    let decoded = S3Encoding.decodePath(pieces[2])
                else { continue }
                value = decoded
            }
            parameters[name] = value
        }
    }

    private static func unquote(_ text: Substring) -> String {
        var out = ""
        var escaped = false
        for character in text {
            if escaped {
                out.append(character)
                escaped = false
            } else if character == "\\" {
                escaped = true
            } else {
                out.append(character)
            }
        }
        return out
    }
}
