/// A file format Assured accepts for upload, with the magic number that proves a file really is one.
///
/// The platform checks only the extension (and the SDK only in one helper); credgate checks both, so a renamed
/// `.docx` or a PNG saved as `.pdf` is refused before it leaves the machine.
enum FileType: String, Sendable, CaseIterable, Hashable {
    case pdf
    case png
    case jpeg

    /// The extensions, lower-cased and without the dot, that name an accepted type.
    static let acceptedExtensions: [String] = ["pdf", "png", "jpg", "jpeg"]

    /// How many leading bytes ``detect(_:)`` needs to tell every accepted type apart (the PNG signature's length).
    static let sniffLength = 8

    /// The sentence the SDK uses, kept word for word so users recognise it.
    static let acceptedSentence = "Assured only accepts PDF, PNG, and JPEG files."

    /// The MIME type the platform expects in the file part's `Content-Type`.
    var mimeType: String {
        switch self {
        case .pdf: return "application/pdf"
        case .png: return "image/png"
        case .jpeg: return "image/jpeg"
        }
    }

    /// The bytes every file of this type starts with.
    var magic: [UInt8] {
        switch self {
        case .pdf: return Array("%PDF-".utf8)
        case .png: return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        case .jpeg: return [0xFF, 0xD8, 0xFF]
        }
    }

    /// The short name used in messages: "PDF", "PNG", "JPEG".
    var displayName: String {
        switch self {
        case .pdf: return "PDF"
        case .png: return "PNG"
        case .jpeg: return "JPEG"
        }
    }

    /// The type with an article, for sentences: "a PDF document", "a PNG image".
    var phrase: String {
        switch self {
        case .pdf: return "a PDF document"
        case .png: return "a PNG image"
        case .jpeg: return "a JPEG image"
        }
    }

    /// The extension credgate uses when it has to pick one (`jpg` for JPEG, as most tools do).
    var preferredExtension: String {
        switch self {
        case .pdf: return "pdf"
        case .png: return "png"
        case .jpeg: return "jpg"
        }
    }

    /// The type an extension names, in any case, with or without the leading dot: `".JPEG"` is ``jpeg``.
    init?(extension ext: some StringProtocol) {
        var lowered = ext.lowercased()
        if lowered.hasPrefix(".") { lowered.removeFirst() }
        switch lowered {
        case "pdf": self = .pdf
        case "png": self = .png
        case "jpg", "jpeg": self = .jpeg
        default: return nil
        }
    }

    /// The type a MIME type names, ignoring case and parameters; the common non-standard JPEG aliases count.
    init?(mimeType: some StringProtocol) {
        switch Self.essence(of: mimeType) {
        case "application/pdf", "application/x-pdf": self = .pdf
        case "image/png", "image/x-png": self = .png
        case "image/jpeg", "image/jpg", "image/pjpeg": self = .jpeg
        default: return nil
        }
    }

    /// The type the file name's extension names, or `nil` (no extension, or one not accepted).
    init?(filename: some StringProtocol) {
        guard let ext = Self.fileExtension(of: filename) else { return nil }
        self.init(extension: ext)
    }

    /// The extension of the last path component, lower-cased and without the dot; `nil` when there is none.
    ///
    /// Like Python's `Path.suffix` (what the SDK checks): `"scan.final.PDF"` gives `"pdf"`, `".bashrc"` and
    /// `"README"` give `nil`; whatever precedes a `/` or `\` is ignored, as the platform keeps only the base name.
    static func fileExtension(of filename: some StringProtocol) -> String? {
        let base =
            filename.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "/" || $0 == "\\" }).last ?? ""
        guard let dot = base.lastIndex(of: "."), dot != base.startIndex else { return nil }
        let ext = base[base.index(after: dot)...]
        return ext.isEmpty ? nil : ext.lowercased()
    }

    /// The accepted type these leading bytes are, or `nil`. Give it at least ``sniffLength`` bytes when the
    /// file has that many.
    static func detect(_ bytes: some Collection<UInt8>) -> FileType? {
        allCases.first { bytes.starts(with: $0.magic) }
    }

    /// What leading bytes look like, for a message a person can act on: "a PNG image", "a ZIP archive (...)".
    static func describeContent(_ bytes: some Collection<UInt8>) -> String {
        if let type = detect(bytes) { return type.phrase }
        let b = Array(bytes.prefix(sniffLength))
        func starts(_ prefix: [UInt8]) -> Bool { b.starts(with: prefix) }
        func starts(_ prefix: String) -> Bool { b.starts(with: Array(prefix.utf8)) }
        if b.isEmpty { return "empty" }
        if starts([0x50, 0x4B, 0x03, 0x04]) || starts([0x50, 0x4B, 0x05, 0x06]) || starts([0x50, 0x4B, 0x07, 0x08]) {
            return "a ZIP archive (which is what .docx, .xlsx and .pptx files are)"
        }
        if starts([0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
            return "an older Microsoft Office document (.doc, .xls or .ppt)"
        }
        if starts("GIF87a") || starts("GIF89a") { return "a GIF image" }
        if starts([0x49, 0x49, 0x2A, 0x00]) || starts([0x4D, 0x4D, 0x00, 0x2A]) { return "a TIFF image" }
        if starts("RIFF") { return "a RIFF file (such as a WebP image)" }
        if b.count >= 8, b[4...7].elementsEqual("ftyp".utf8) {
            return "an ISO media file (such as a HEIC photo or an MP4 video)"
        }
        if starts("{\\rtf") { return "an RTF document" }
        if starts([0x7F, 0x45, 0x4C, 0x46]) || starts("MZ") { return "a program" }
        if starts("BM") { return "a BMP image" }
        if starts([0x1F, 0x8B]) { return "a gzip archive" }
        if starts([0xEF, 0xBB, 0xBF])
            || b.allSatisfy({ $0 == 0x09 || $0 == 0x0A || $0 == 0x0D || (0x20...0x7E).contains($0) })
        {
            return "text"
        }
        return "data of an unrecognised format"
    }

    /// Whether a declared `Content-Type` says nothing about the file (missing, empty or an octet stream), so
    /// credgate replaces it with the detected type.
    static func isGenericMIMEType(_ value: String?) -> Bool {
        guard let value else { return true }
        switch essence(of: value) {
        case "", "application/octet-stream", "binary/octet-stream", "application/binary", "application/unknown":
            return true
        default:
            return false
        }
    }

    /// `type/subtype` lower-cased, without parameters or surrounding spaces.
    static func essence(of mimeType: some StringProtocol) -> String {
        let head = mimeType.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        return UploadHeaderSyntax.trim(head).lowercased()
    }
}
