import Foundation

/// The request's `Content-Type` as far as an upload cares: it must be `multipart/form-data` with a usable boundary.
struct UploadContentType: Sendable, Equatable {
    /// The boundary, as sent (unquoted).
    let boundary: String

    /// Reads `multipart/form-data; boundary=...` (type and parameter names in any case, the value quoted or not).
    init(_ header: String?) throws(UploadRejection) {
        guard let header, !UploadHeaderSyntax.trim(header).isEmpty else { throw .notMultipart(nil) }
        guard FileType.essence(of: header) == "multipart/form-data" else { throw .notMultipart(header) }
        let parameters = UploadHeaderSyntax.parameters(header)
        guard let boundary = parameters.last(where: { $0.name == "boundary" })?.value, !boundary.isEmpty else {
            throw .missingBoundary
        }
        guard Self.isValidBoundary(boundary) else { throw .invalidBoundary(boundary) }
        self.boundary = boundary
    }

    /// RFC 2046 §5.1.1: 1 to 70 `bchars`, not ending with a space.
    static func isValidBoundary(_ boundary: String) -> Bool {
        let bytes = Array(boundary.utf8)
        guard (1...70).contains(bytes.count), bytes.last != 0x20 else { return false }
        return bytes.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "A")...UInt8(ascii: "Z"):
                return true
            default:
                return "'()+_,-./:=? ".utf8.contains(byte)
            }
        }
    }
}

/// A part's `Content-Disposition: form-data; name="..."; filename="..."`, read the way the platform (Django)
/// reads it, so credgate checks the same file name the platform will store.
struct UploadContentDisposition: Sendable, Equatable {
    var name: String
    var filename: String?

    /// `nil` when the header is not `form-data` with a `name`.
    init?(_ value: String) {
        let type = value.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        guard UploadHeaderSyntax.trim(type).lowercased() == "form-data" else { return nil }
        var name: String?
        var filename: String?
        for parameter in UploadHeaderSyntax.parameters(value) {
            switch parameter.name {
            case "name": name = String(UploadHeaderSyntax.trim(parameter.value)) // Django strips it
            case "filename": filename = parameter.value
            default: break
            }
        }
        guard let name else { return nil }
        self.name = name
        self.filename = filename
    }
}

/// Small pieces of header syntax shared by the upload checks and the writer.
enum UploadHeaderSyntax {
    struct Parameter: Equatable {
        var name: String
        var value: String
    }

    /// The `;`-separated parameters after the first item, as Django's `parse_header_parameters` reads them: names
    /// lower-cased, quoted values unquoted (`\\` and `\"` unescaped), `name*=UTF-8''...` percent-decoded and
    /// standing for `name`; a later parameter of the same name wins.
    static func parameters(_ header: String) -> [Parameter] {
        var pieces: [Substring] = []
        var start = header.startIndex
        var inQuotes = false
        var escaped = false
        var i = header.startIndex
        while i < header.endIndex {
            let c = header[i]
            if escaped {
                escaped = false
            } else if inQuotes && c == "\\" {
                escaped = true
            } else if c == "\"" {
                inQuotes.toggle()
            } else if c == ";" && !inQuotes {
                pieces.append(header[start..<i])
                start = header.index(after: i)
            }
            i = header.index(after: i)
        }
        pieces.append(header[start...])
        var result: [Parameter] = []
        for piece in pieces.dropFirst() {
            guard let eq = piece.firstIndex(of: "=") else { continue }
            var name = trim(piece[..<eq]).lowercased()
            var value = String(trim(piece[piece.index(after: eq)...]))
            var extended = false
            if name.hasSuffix("*") {
                name.removeLast()
                extended = value.filter({ $0 == "'" }).count == 2
            }
            if value.count >= 2, value.first == "\"", value.last == "\"" {
                value = String(value.dropFirst().dropLast())
                    .replacingOccurrences(of: "\\\\", with: "\\")
                    .replacingOccurrences(of: "\\\"", with: "\"")
            }
            if extended {
                let fields = value.split(separator: "'", omittingEmptySubsequences: false)
                let charset = fields[0].lowercased()
                let encoded = String(fields[2])
                if charset == "utf-8" || charset == "us-ascii" || charset.isEmpty {
                    value = encoded.removingPercentEncoding ?? encoded
                } else if charset == "iso-8859-1" || charset == "latin1" {
                    value = latin1PercentDecoded(encoded) ?? encoded
                }
            }
            result.append(Parameter(name: name, value: value))
        }
        return result
    }

    private static func latin1PercentDecoded(_ text: String) -> String? {
        var bytes: [UInt8] = []
        var iterator = Array(text.utf8).makeIterator()
        while let b = iterator.next() {
            if b == UInt8(ascii: "%") {
                guard let h = iterator.next(), let l = iterator.next(),
                    let v = UInt8(String(decoding: [h, l], as: UTF8.self), radix: 16)
                else { return nil }
                bytes.append(v)
            } else {
                bytes.append(b)
            }
        }
        return String(bytes.map { Character(Unicode.Scalar($0)) })
    }

    /// Without leading and trailing spaces and tabs.
    static func trim<S: StringProtocol>(_ s: S) -> Substring {
        let s = Substring(s)
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = s.firstIndex(where: { !isSpace($0) }) else { return s[s.endIndex...] }
        return s[first...s.lastIndex(where: { !isSpace($0) })!]
    }

    /// A client-supplied text made safe to quote in a message: control characters shown as `?`, at most 80
    /// characters.
    static func clip(_ text: String) -> String {
        let cleaned = String(String.UnicodeScalarView(text.unicodeScalars.map { isControl($0) ? "?" : $0 }))
        return cleaned.count > 80 ? String(cleaned.prefix(77)) + "..." : cleaned
    }

    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value)
    }

    /// `25 MiB`, `1.5 MiB`, `300 KiB`, `12 bytes`.
    static func formatBytes(_ n: Int) -> String {
        func format(_ value: Double, _ unit: String) -> String {
            let rounded = (value * 10).rounded() / 10
            return rounded == rounded.rounded() ? "\(Int(rounded)) \(unit)" : "\(rounded) \(unit)"
        }
        if n >= 1 << 30 { return format(Double(n) / Double(1 << 30), "GiB") }
        if n >= 1 << 20 { return format(Double(n) / Double(1 << 20), "MiB") }
        if n >= 1 << 10 { return format(Double(n) / Double(1 << 10), "KiB") }
        return n == 1 ? "1 byte" : "\(n) bytes"
    }
}

/// The rules for a stored file name: the `name` field of an upload, or the file name of a raw upload.
enum UploadFileName {
    /// The longest name accepted, in UTF-8 bytes (what most file systems and the keg-storage convention allow).
    static let maxBytes = 255

    /// What is wrong with the name, as the end of a sentence ("is empty"), or `nil` when it is fine.
    static func problem(_ bytes: [UInt8], truncated: Bool = false) -> String? {
        if truncated || bytes.count > maxBytes { return "is longer than \(maxBytes) bytes" }
        guard !bytes.isEmpty else { return "is empty" }
        guard let text = String(validating: bytes, as: UTF8.self) else { return "is not valid UTF-8 text" }
        return problem(text)
    }

    static func problem(_ text: String) -> String? {
        if text.utf8.count > maxBytes { return "is longer than \(maxBytes) bytes" }
        if text.isEmpty { return "is empty" }
        if text.contains("/") || text.contains("\\") { return "contains a path separator ('/' or '\\')" }
        if text.unicodeScalars.contains(where: UploadHeaderSyntax.isControl) { return "contains a control character" }
        if text == "." || text == ".." { return "is '\(text)', which names a directory" }
        return nil
    }

    /// A random name keeping the original extension, lower-cased, as the SDK makes it: `1b4e...c9.pdf`.
    static func generated(for filename: String, type: FileType, uuid: UUID) -> String {
        let ext = FileType.fileExtension(of: filename) ?? type.preferredExtension
        return "\(uuid.uuidString.lowercased()).\(ext)"
    }
}
