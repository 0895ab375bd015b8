import Hummingbird

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Splits a streaming `multipart/form-data` body into parts: each part's header fields, its body bytes as
/// zero-copy slices of the buffers that arrived, and its end.
///
/// Why not MultipartKit's `MultipartParser`: it copies every body byte one at a time through generic `Sequence`
/// code, which in the debug builds tests run (dependencies included) managed about 1.5 MB/s: 16 s for a 24 MiB
/// upload, minutes for the 128 MiB bodies gateway tests send. Here the delimiter is looked for with `memchr`
/// for its leading CR and `memcmp` for the rest, and body bytes are never touched one by one.
///
/// The framing follows RFC 2046 as MultipartKit reads it: the first delimiter may open the body without a CR LF,
/// a delimiter is `CR LF -- boundary`, then `--` closes the body or optional spaces and tabs and CR LF open a part;
/// anything else after a delimiter is a syntax error. Preamble and epilogue are ignored.
struct MultipartFraming {
    enum Event {
        /// A part's header fields in order, names and values as sent (values without surrounding blanks).
        case headers([(name: String, value: String)])
        /// Some of the current part's body.
        case body(ByteBuffer)
        /// The current part is complete.
        case partEnd
    }

    enum Failure: Error, Equatable {
        case syntax
        case headersTooLarge
    }

    /// Largest header block of one part.
    static let headerLimit = 16 * 1024

    private enum State: Equatable {
        case preamble, afterDelimiter, headers, body, epilogue
    }

    private let delimiter: [UInt8]
    private var state = State.preamble
    /// Bytes held back from the last buffer: a possible start of a delimiter, or a delimiter's unfinished tail.
    /// Starts as CR LF so that a body opening directly with `--boundary` matches like any other delimiter.
    private var carry = ByteBuffer(bytes: [13, 10])
    private var headerBytes: [UInt8] = []

    init(boundary: String) {
        delimiter = Array("\r\n--\(boundary)".utf8)
    }

    /// The closing delimiter has been read.
    var isClosed: Bool { state == .epilogue }

    /// The body stopped inside a part (its headers or its bytes), so it was cut short.
    var isInsidePart: Bool { state == .headers || state == .body }

    mutating func feed(_ incoming: ByteBuffer, _ emit: (Event) -> Void) throws(Failure) {
        guard state != .epilogue else { return }
        var data = incoming
        if carry.readableBytes > 0 {
            data = carry
            data.writeImmutableBuffer(incoming)
            carry = ByteBuffer()
        }
        while data.readableBytes > 0 {
            switch state {
            case .preamble, .body:
                let inBody = state == .body
                switch find(in: data) {
                case .found(let offset):
                    if inBody && offset > 0 { emit(.body(data.readSlice(length: offset)!)) }
                    data.moveReaderIndex(forwardBy: (inBody ? 0 : offset) + delimiter.count)
                    if inBody { emit(.partEnd) }
                    state = .afterDelimiter
                case .partial(let offset):
                    if inBody && offset > 0 { emit(.body(data.readSlice(length: offset)!)) }
                    if !inBody { data.moveReaderIndex(forwardBy: offset) }
                    carry = data
                    return
                case .none:
                    if inBody { emit(.body(data)) }
                    return
                }

            case .afterDelimiter:
                let view = data.readableBytesView
                var i = view.startIndex
                if view[i] == UInt8(ascii: "-") {
                    guard view.count >= 2 else {
                        carry = data
                        return
                    }
                    guard view[i + 1] == UInt8(ascii: "-") else { throw .syntax }
                    state = .epilogue
                    return
                }
                while i < view.endIndex && (view[i] == UInt8(ascii: " ") || view[i] == UInt8(ascii: "\t")) { i += 1 }
                guard i - view.startIndex <= 1024 else { throw .syntax }
                guard i + 1 < view.endIndex else {
                    carry = data
                    return
                }
                guard view[i] == 13, view[i + 1] == 10 else { throw .syntax }
                data.moveReaderIndex(to: i + 2)
                state = .headers
                headerBytes = [13, 10] // so an empty header block is found like any other end of headers

            case .headers:
                let searchFrom = max(0, headerBytes.count - 3)
                headerBytes += data.readableBytesView
                data = ByteBuffer()
                guard let end = Self.firstRange(of: [13, 10, 13, 10], in: headerBytes, from: searchFrom) else {
                    guard headerBytes.count <= Self.headerLimit else { throw .headersTooLarge }
                    return
                }
                guard end <= Self.headerLimit else { throw .headersTooLarge }
                emit(.headers(try Self.fields(headerBytes[min(2, end)..<end])))
                data = ByteBuffer(bytes: headerBytes[(end + 4)...])
                headerBytes = []
                state = .body

            case .epilogue:
                return
            }
        }
    }

    // MARK: Searching

    private enum Match {
        /// The whole delimiter starts at this offset of the readable bytes.
        case found(Int)
        /// The readable bytes end with a proper prefix of the delimiter, starting at this offset.
        case partial(Int)
        case none
    }

    /// The first delimiter in `data`. Its CR occurs nowhere else in it (a boundary cannot hold CR), so a failed
    /// comparison can resume just after the CR it started at.
    private func find(in data: ByteBuffer) -> Match {
        data.withUnsafeReadableBytes { raw -> Match in
            guard let base = raw.baseAddress else { return .none }
            let count = raw.count
            return delimiter.withUnsafeBytes { wanted -> Match in
                var from = 0
                while from < count {
                    guard let hit = memchr(base + from, 13, count - from) else { return .none }
                    let offset = base.distance(to: UnsafeRawPointer(hit))
                    let available = count - offset
                    if available >= wanted.count {
                        if memcmp(hit, wanted.baseAddress!, wanted.count) == 0 { return .found(offset) }
                    } else if memcmp(hit, wanted.baseAddress!, available) == 0 {
                        return .partial(offset)
                    }
                    from = offset + 1
                }
                return .none
            }
        }
    }

    private static func firstRange(of needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        var i = start
        while i + needle.count <= haystack.count {
            if haystack[i] == needle[0] && haystack[i..<i + needle.count].elementsEqual(needle) { return i }
            i += 1
        }
        return nil
    }

    /// `Name: value` lines separated by CR LF. Names must be RFC 822 tokens, as MultipartKit requires.
    private static func fields(_ block: ArraySlice<UInt8>) throws(Failure) -> [(name: String, value: String)] {
        var fields: [(name: String, value: String)] = []
        var lineStart = block.startIndex
        while lineStart < block.endIndex {
            var lineEnd = lineStart
            while lineEnd < block.endIndex
                && !(block[lineEnd] == 13 && lineEnd + 1 < block.endIndex && block[lineEnd + 1] == 10)
            {
                lineEnd += 1
            }
            let line = block[lineStart..<lineEnd]
            guard let colon = line.firstIndex(of: UInt8(ascii: ":")), colon > line.startIndex,
                line[..<colon].allSatisfy(isTokenByte)
            else { throw .syntax }
            var value = line[(colon + 1)...]
            while let first = value.first, first == 32 || first == 9 { value = value.dropFirst() }
            while let last = value.last, last == 32 || last == 9 { value = value.dropLast() }
            fields.append((String(decoding: line[..<colon], as: UTF8.self), String(decoding: value, as: UTF8.self)))
            lineStart = lineEnd + 2
        }
        return fields
    }

    /// A byte allowed in a header name: printable ASCII except the separators of RFC 822.
    private static func isTokenByte(_ byte: UInt8) -> Bool {
        guard byte > 32 && byte < 127 else { return false }
        return !"()<>@,;:\\\"/[]?={} ".utf8.contains(byte)
    }
}
