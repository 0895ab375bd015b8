/// Follows the delimiter lines of a multipart body as it streams, to know what MultipartKit's parser does not
/// say: where each part starts (byte offsets, for rewriting the head) and whether the body was closed with
/// `--boundary--`.
///
/// It recognises delimiters exactly as `MultipartParser` does (including its tolerance for a body that opens
/// with `--boundary` without a CRLF), so both count the same parts; the parser checks the header grammar. It
/// also bounds what a client can make the gateway scan before anything is decided: a preamble and a part's
/// header block are limited to 16 KiB each.
///
/// It also refuses a header *name* byte that is not an RFC 9110 token character before the parser sees it:
/// MultipartKit 4.7.1's `parseHeaderName` looks every name byte up in a 128-entry table, so a byte of 0x80 or
/// above indexes past its end and traps, killing the process. The parser is only ever given the bytes before a
/// framing failure (``scan(_:)`` returns where it failed), so that byte never reaches it.
struct UploadFraming: Sendable {
    static let maxPreamble = 16 * 1024
    static let maxHeaderBlock = 16 * 1024

    enum Failure: Sendable, Equatable {
        case boundaryNotFound
        case badDelimiterLine
        case emptyMultipart
        case headersTooLong
        case badHeaderName

        var rejection: UploadRejection {
            switch self {
            case .boundaryNotFound:
                return .malformed("the boundary from the Content-Type does not appear at the start of the body")
            case .badDelimiterLine:
                return .malformed(
                    "a boundary line is followed by something other than a line break or the closing '--'")
            case .emptyMultipart:
                return .malformed("it closes before its first part")
            case .headersTooLong:
                return .malformed("a part's headers are longer than \(UploadFraming.maxHeaderBlock / 1024) KiB")
            case .badHeaderName:
                return .malformed(
                    "a part's header name holds a byte that is not allowed there (only ASCII letters, "
                        + "digits and !#$%&'*+-.^_`|~ are)")
            }
        }
    }

    private enum State: Sendable, Equatable {
        /// Before the first delimiter; `matched` bytes of it seen.
        case preamble(matched: Int)
        /// Right after a delimiter: CRLF opens a part, `--` closes the body. `first` for the first delimiter,
        /// which cannot close; `seen` is the byte already read of the two.
        case delimiterLine(first: Bool, seen: UInt8?)
        /// In a part's header block; `matched` bytes of CRLF CRLF seen (starting at 2: the delimiter's CRLF counts).
        case headers(matched: Int)
        /// In a part's content; `matched` bytes of the delimiter seen.
        case body(matched: Int)
        case closed
        case failed(Failure)
    }

    /// `CRLF--boundary`.
    private let delimiter: [UInt8]
    private var state: State = .preamble(matched: 0)
    /// Bytes scanned so far.
    private(set) var offset = 0
    /// Where the delimiter being matched started, and whether it has its CRLF.
    private var candidateOffset = 0
    private var candidateHasCRLF = true
    /// The part whose header block is being read.
    private var opening: MultipartPartLayout?
    private var headerBytes = 0
    /// In a part's header block, whether the bytes being read belong to a header name (from the line's start to
    /// its colon).
    private var inHeaderName = false
    /// Parts whose headers are complete, in order, not yet collected by ``dropLayouts(before:)``.
    private(set) var layouts: [MultipartPartLayout] = []
    /// Parts opened so far.
    private(set) var partCount = 0
    /// Offsets just past each delimiter that ended a part's content during the last ``scan(_:)``.
    private(set) var delimiterEnds: [Int] = []

    init(boundary: String) {
        self.delimiter = Array("\r\n--\(boundary)".utf8)
    }

    var isClosed: Bool { state == .closed }
    /// Whether the scan is inside a part's content (possibly partway into a delimiter).
    var isInBody: Bool {
        if case .body = state { return true }
        return false
    }
    /// `CRLF--boundary`, the bytes that end a part's content.
    var delimiterBytes: [UInt8] { delimiter }
    var sawDelimiter: Bool { partCount > 0 || state == .closed }
    var failure: Failure? {
        if case .failed(let failure) = state { return failure }
        return nil
    }

    /// Why a body that ended here is incomplete; `nil` when it was closed properly.
    var endProblem: UploadRejection? {
        switch state {
        case .closed: return nil
        case .failed(let failure): return failure.rejection
        case .preamble: return Failure.boundaryNotFound.rejection
        case .delimiterLine(_, let seen) where seen == UInt8(ascii: "-"):
            return .malformed("the closing boundary line ends after a single '-' instead of '--'")
        default:
            return .malformed(
                "the body ends before the closing boundary line '--\(String(decoding: delimiter.dropFirst(4), as: UTF8.self))--'"
            )
        }
    }

    /// The layout of part `index` if its headers have been scanned and it was not dropped.
    func layout(ofPart index: Int) -> MultipartPartLayout? {
        layouts.first { $0.index == index }
    }

    /// Forgets the layouts of parts before `index`, except `keeping`.
    mutating func dropLayouts(before index: Int, keeping kept: Int?) {
        layouts.removeAll { $0.index < index && $0.index != kept }
    }

    /// Scans the next bytes. Returns the index (within `bytes`) of the byte that broke the framing, after which
    /// nothing more is scanned; `nil` when all is well so far.
    mutating func scan(_ bytes: UnsafeRawBufferPointer) -> Int? {
        let n = bytes.count
        let d = delimiter
        let dCount = d.count
        var i = 0
        delimiterEnds.removeAll(keepingCapacity: true)
        defer { offset += i }
        while i < n {
            let byte = bytes[i]
            switch state {
            case .preamble(var matched):
                // MultipartParser's rule: CRLF--boundary anywhere, or --boundary without the CRLF.
                if matched == 0 && byte == d[2] {
                    matched = 3
                    candidateOffset = offset + i
                    candidateHasCRLF = false
                } else if byte == d[matched] {
                    if matched == 0 {
                        candidateOffset = offset + i
                        candidateHasCRLF = true
                    }
                    matched += 1
                } else if matched > 0 && byte == d[0] {
                    matched = 1
                    candidateOffset = offset + i
                    candidateHasCRLF = true
                } else {
                    matched = 0
                }
                if matched == dCount {
                    state = .delimiterLine(first: true, seen: nil)
                } else if matched == 0 && offset + i + 1 >= Self.maxPreamble {
                    state = .failed(.boundaryNotFound)
                    return i
                } else {
                    state = .preamble(matched: matched)
                }
                i += 1

            case .delimiterLine(let first, let seen):
                switch (seen, byte) {
                case (nil, 0x0D), (nil, UInt8(ascii: "-")):
                    state = .delimiterLine(first: first, seen: byte)
                case (0x0D, 0x0A):
                    opening = MultipartPartLayout(
                        index: partCount, delimiterOffset: candidateOffset,
                        delimiterHasLeadingCRLF: candidateHasCRLF,
                        headersOffset: offset + i + 1, dataOffset: -1)
                    partCount += 1
                    headerBytes = 0
                    inHeaderName = true
                    state = .headers(matched: 2)
                case (UInt8(ascii: "-"), UInt8(ascii: "-")) where !first:
                    state = .closed
                case (UInt8(ascii: "-"), UInt8(ascii: "-")):
                    state = .failed(.emptyMultipart)
                    return i
                default:
                    state = .failed(.badDelimiterLine)
                    return i
                }
                i += 1

            case .headers(var matched):
                headerBytes += 1
                if headerBytes > Self.maxHeaderBlock {
                    state = .failed(.headersTooLong)
                    return i
                }
                let crlfcrlf: (UInt8) -> UInt8 = { $0 % 2 == 0 ? 0x0D : 0x0A }
                if byte == crlfcrlf(UInt8(matched)) {
                    matched += 1
                } else {
                    matched = byte == 0x0D ? 1 : 0
                }
                if matched == 0 && inHeaderName {
                    if byte == UInt8(ascii: ":") {
                        inHeaderName = false
                    } else if !Self.isTokenByte(byte) {
                        state = .failed(.badHeaderName)
                        return i
                    }
                }
                if matched == 2 { inHeaderName = true }
                if matched == 4 {
                    if var part = opening {
                        part.dataOffset = offset + i + 1
                        layouts.append(part)
                        opening = nil
                    }
                    state = .body(matched: 0)
                } else {
                    state = .headers(matched: matched)
                }
                i += 1

            case .body(var matched):
                if matched == 0 {
                    // Fast path: skip to the next CR, the only byte that can start a delimiter.
                    var j = i
                    while j < n && bytes[j] != 0x0D { j += 1 }
                    if j == n {
                        i = n
                        continue
                    }
                    i = j
                    matched = 1
                    candidateOffset = offset + i
                    candidateHasCRLF = true
                } else if byte == d[matched] {
                    matched += 1
                } else if byte == d[0] {
                    matched = 1
                    candidateOffset = offset + i
                } else {
                    matched = 0
                }
                if matched == dCount {
                    delimiterEnds.append(offset + i + 1)
                    state = .delimiterLine(first: false, seen: nil)
                } else {
                    state = .body(matched: matched)
                }
                i += 1

            case .closed:
                // The epilogue: ignored, as the parser ignores it.
                i = n

            case .failed:
                return i
            }
        }
        return nil
    }

    /// RFC 9110 `tchar`: ASCII letters, digits and `!#$%&'*+-.^_`|~`.
    static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        case UInt8(ascii: "!"), UInt8(ascii: "#"), UInt8(ascii: "$"), UInt8(ascii: "%"), UInt8(ascii: "&"),
            UInt8(ascii: "'"), UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "-"), UInt8(ascii: "."),
            UInt8(ascii: "^"), UInt8(ascii: "_"), UInt8(ascii: "`"), UInt8(ascii: "|"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }
}
