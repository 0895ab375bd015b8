import FuzzSupport
import NIOCore
import NIOEmbedded
import NIOHTTP1

@testable import CredGate

/// Fuzz target: the fast path's byte-level readers, which see every client head and every upstream answer
/// before NIO's decoder does: `FastHead.parseRequest`, `FastHead.parseResponse` and `ChunkedFraming.feed`.
///
/// Input layout:
/// ```
/// byte 0     bits 0-1: 0 parseRequest, 1 parseResponse, 2 and 3 ChunkedFraming
///            bit 2: the request was a HEAD (parseResponse)
///            bits 3-7: the size limit, 32 * (bits + 1) bytes; 31: 32 KiB (the default maxHeaderBytes)
/// rest       the bytes as they arrive, the head (or body) at their start
/// ```
/// Besides traps, it checks what the readers promise:
/// - a fast request head ends at its first "\r\n\r\n"; its ranges lie in the head; it holds only visible ASCII,
///   spaces, tabs and CRLF line ends; the head alone reads the same, less its last byte it is incomplete (or over
///   the limit); NIO's decoder reads the same method, target and Host from it, with no body, and the full path's
///   checks (its size limit included) pass it; and no input with the limit's worth of bytes in, or with a bare
///   LF, is incomplete;
/// - an answer head likewise ends at its first "\r\n\r\n" with its ranges inside it and its status the three
///   digits of its status line, and its framing follows its status;
/// - a chunked body read in one piece, in two (split in the middle) and byte by byte ends at the same byte (or
///   is malformed, or wants more, in every reading) with the same data bytes, and agrees with a plain reading
///   of the whole body (`referenceChunked`).
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzFastHead(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let options = input.byte()
    let bytes = input.rest()
    let limitBits = Int(options >> 3)
    let limit = limitBits == 31 ? 32 * 1024 : 32 * (limitBits + 1)
    switch options & 3 {
    case 0: checkRequest(bytes, maxHeaderBytes: limit)
    case 1: checkResponse(bytes, requestWasHead: options & 4 != 0, limit: limit)
    default: checkChunked(bytes)
    }
    return 0
}

/// What a runtime with one `api_key` credential refuses on the fast path.
let refused = (FastHead.fullPathRequestHeaders + ["x-api-key"]).map { Array($0.utf8) }

let crlfcrlf: [UInt8] = [13, 10, 13, 10]

/// Where the first "\r\n\r\n" ends, searched plainly.
func firstHeadEnd(_ bytes: [UInt8]) -> Int? {
    guard bytes.count >= 4 else { return nil }
    for end in 4...bytes.count where bytes[(end - 4)..<end].elementsEqual(crlfcrlf) { return end }
    return nil
}

func parseRequest(_ bytes: [UInt8], maxHeaderBytes: Int) -> FastHead.RequestParse {
    bytes.withUnsafeBytes { FastHead.parseRequest($0, maxHeaderBytes: maxHeaderBytes, refused: refused) }
}

func parseResponse(_ bytes: [UInt8], requestWasHead: Bool, limit: Int) -> FastHead.ResponseParse {
    bytes.withUnsafeBytes { FastHead.parseResponse($0, requestWasHead: requestWasHead, limit: limit) }
}

/// Only visible ASCII, spaces and tabs, and CR exactly where an LF follows (and LF only after a CR).
func isCleanHead(_ head: ArraySlice<UInt8>) -> Bool {
    var i = head.startIndex
    while i < head.endIndex {
        let c = head[i]
        if c == 13 {
            guard i + 1 < head.endIndex, head[i + 1] == 10 else { return false }
            i += 2
            continue
        }
        if c < 0x20 && c != 0x09 || c >= 0x7F { return false }
        i += 1
    }
    return true
}

func within(_ range: Range<Int>, _ bounds: Range<Int>) -> Bool {
    range.lowerBound >= bounds.lowerBound && range.upperBound <= bounds.upperBound
}

// MARK: - Requests

func checkRequest(_ bytes: [UInt8], maxHeaderBytes: Int) {
    let parse = parseRequest(bytes, maxHeaderBytes: maxHeaderBytes)
    let end = firstHeadEnd(bytes)
    // framedRequest (a request handed to the full path alone): its length covers exactly the first head and a
    // body, and a fast head is framed as its own length and its body's (a POST's Content-Length, else none).
    let framed = bytes.withUnsafeBytes { FastHead.framedRequest($0, maxHeaderBytes: maxHeaderBytes) }
    if let framed {
        fuzzExpect(end != nil && framed >= end!, "framed request shorter than its head")
    }
    if case .fast(let request) = parse {
        fuzzExpect(
            framed == request.length + request.contentLength,
            "a fast head framed as \(String(describing: framed)), not its length and its body's")
    }
    switch parse {
    case .incomplete:
        // The wait is bounded: never with the limit's worth of bytes in, nor for a head NIO's decoder would
        // already refuse for a bare LF.
        fuzzExpect(end == nil && bytes.count < maxHeaderBytes, "incomplete, but the head is in or over the limit")
        fuzzExpect(
            !bytes.indices.contains { bytes[$0] == 10 && ($0 == 0 || bytes[$0 - 1] != 13) },
            "incomplete with a bare LF in")
    case .fullPath:
        break
    case .fast(let request):
        // The limit is the full path's (`checkWithNIO`), which does not count bytes: no byte bound here.
        let n = request.length
        fuzzExpect(n <= bytes.count, "a head of \(n) bytes, longer than its input")
        fuzzExpect(n >= 4 && bytes[(n - 4)..<n].elementsEqual(crlfcrlf), "a head that does not end in CRLF CRLF")
        fuzzExpect(end == n, "a head that ends at \(n), not at its first CRLF CRLF (\(String(describing: end)))")
        let headRange = 0..<n
        fuzzExpect(within(request.target, headRange) && !request.target.isEmpty, "target \(request.target) not in")
        fuzzExpect(
            request.pathEnd >= request.target.lowerBound && request.pathEnd <= request.target.upperBound,
            "pathEnd \(request.pathEnd) not in the target \(request.target)")
        fuzzExpect(
            request.headersStart >= request.target.upperBound && request.headersStart <= n - 2,
            "headersStart \(request.headersStart) not in the head")
        fuzzExpect(
            within(request.host, request.headersStart..<(n - 2)) && !request.host.isEmpty,
            "host \(request.host) not in the header lines")
        fuzzExpect(isCleanHead(bytes[headRange]), "a fast head with a control byte, obs-text or a bare CR or LF")
        var requestLine: [UInt8] = Array(request.method.rawValue.utf8)
        requestLine.append(0x20)
        requestLine += bytes[request.target]
        requestLine += Array(" HTTP/1.1\r\n".utf8)
        fuzzExpect(
            bytes[0..<request.headersStart].elementsEqual(requestLine),
            "the request line is not METHOD SP target SP HTTP/1.1")
        fuzzExpect(
            [HTTPMethod.GET, .HEAD, .DELETE, .OPTIONS, .POST].contains(request.method), "a fast \(request.method)")
        fuzzExpect(
            request.contentLength >= 0 && (request.method == .POST || request.contentLength == 0),
            "a body of \(request.contentLength) bytes on a fast \(request.method)")
        fuzzExpect(bytes[request.target.lowerBound] == UInt8(ascii: "/"), "a target not in origin form")
        fuzzExpect(
            !bytes[request.target.lowerBound..<request.pathEnd].contains(UInt8(ascii: "?")), "a path with a '?'")
        fuzzExpect(
            request.pathEnd == request.target.upperBound || bytes[request.pathEnd] == UInt8(ascii: "?"),
            "the path ends neither at '?' nor at the target's end")

        // The head alone reads the same; less its last byte, it is not all in.
        let head = Array(bytes[headRange])
        fuzzExpect(
            parseRequest(head, maxHeaderBytes: maxHeaderBytes) == parse, "the head alone reads differently")
        let shorter = parseRequest(Array(head.dropLast()), maxHeaderBytes: maxHeaderBytes)
        fuzzExpect(
            shorter == .incomplete || shorter == .fullPath && n - 1 >= maxHeaderBytes,
            "the head less its last byte is \(shorter)")
        checkWithNIO(head, request, maxHeaderBytes: maxHeaderBytes)
    }
}

/// NIO's decoder, and the full path's checks after it, read a fast head the same way.
func checkWithNIO(_ head: [UInt8], _ request: FastHead.Request, maxHeaderBytes: Int) {
    let channel = EmbeddedChannel()
    defer { _ = try? channel.finish() }
    var parts: [HTTPServerRequestPart] = []
    // A POST's body (its declared length, up to 64 KiB of it: a length may be huge).
    let body = min(request.contentLength, 65536)
    do {
        try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(HTTPRequestDecoder()))
        try channel.writeInbound(ByteBuffer(bytes: head + [UInt8](repeating: 0x61, count: body)))
        while let part = try channel.readInbound(as: HTTPServerRequestPart.self) { parts.append(part) }
    } catch {
        fuzzExpect(false, "NIO refuses a fast head: \(error)")
    }
    var bodyBytes = 0
    var ended = false
    for part in parts.dropFirst() {
        switch part {
        case .body(let bytes): bodyBytes += bytes.readableBytes
        case .end: ended = true
        case .head: fuzzExpect(false, "NIO reads a second head")
        }
    }
    guard case .head(let nio) = parts.first,
        bodyBytes == body, ended == (body == request.contentLength)
    else {
        fuzzExpect(false, "NIO reads a fast head as \(parts.count) parts, not a head, its body and its end")
        return
    }
    let host = String(decoding: head[request.host], as: UTF8.self)
    fuzzExpect(nio.method == request.method, "NIO reads the method \(nio.method)")
    fuzzExpect(nio.uri.utf8.elementsEqual(head[request.target]), "NIO reads the target \(nio.uri)")
    fuzzExpect(nio.version == .http1_1, "NIO reads the version \(nio.version)")
    fuzzExpect(nio.isKeepAlive == !request.close, "NIO reads keep-alive \(nio.isKeepAlive)")
    let nioHosts = nio.headers.filter { $0.name.lowercased() == "host" }.map { $0.value[...].trimmingASCIISpaces() }
    fuzzExpect(nioHosts == [host[...]], "NIO reads Host as \(nioHosts)")
    fuzzExpect(
        ProxyHandler.hasBody(nio) == (request.contentLength > 0),
        "the full path finds a body: \(ProxyHandler.hasBody(nio))")
    if request.method == .POST {
        fuzzExpect(
            nio.headers["content-length"] == [String(request.contentLength)]
                || nio.headers["content-length"].count == 1
                    && Int(nio.headers["content-length"][0]) == request.contentLength,
            "NIO reads Content-Length as \(nio.headers["content-length"])")
    }
    fuzzExpect(
        RequestPath.normalize(ProxyHandler.path(of: nio.uri)) == .unchanged, "the full path normalises \(nio.uri)")
    let verdict = ProxyHandler.check(nio, maxHeaderBytes: maxHeaderBytes, protectedHeaders: ["x-api-key"])
    fuzzExpect(verdict == nil, "the full path refuses a fast head: \(String(describing: verdict))")
}

// MARK: - Answers

func checkResponse(_ bytes: [UInt8], requestWasHead: Bool, limit: Int) {
    let parse = parseResponse(bytes, requestWasHead: requestWasHead, limit: limit)
    let end = firstHeadEnd(bytes)
    switch parse {
    case .incomplete:
        fuzzExpect(end == nil && bytes.count < limit, "incomplete, but the head is in or over the limit")
    case .malformed:
        break
    case .head(let response):
        let n = response.length
        fuzzExpect(n <= bytes.count && n <= limit, "a head of \(n) bytes, longer than its input or limit")
        fuzzExpect(n >= 4 && bytes[(n - 4)..<n].elementsEqual(crlfcrlf), "a head that does not end in CRLF CRLF")
        fuzzExpect(end == n, "a head that ends at \(n), not at its first CRLF CRLF (\(String(describing: end)))")
        fuzzExpect(
            bytes.starts(with: Array("HTTP/1.1 ".utf8)) || bytes.starts(with: Array("HTTP/1.0 ".utf8)),
            "not an HTTP/1.x status line")
        fuzzExpect(
            response.statusText.lowerBound == 9 && response.statusText.count >= 3
                && response.headersStart == response.statusText.upperBound + 2 && response.headersStart <= n - 2,
            "statusText \(response.statusText), headersStart \(response.headersStart) not in the head")
        fuzzExpect(
            bytes[response.statusText.upperBound] == 13 && bytes[response.statusText.upperBound + 1] == 10,
            "the status line does not end at statusText's end")
        let digits = bytes[9..<12]
        fuzzExpect(digits.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }, "a status that is not three digits")
        fuzzExpect(
            response.status == digits.reduce(0) { $0 * 10 + Int($1 - 0x30) }, "status \(response.status) misread")
        fuzzExpect(response.status >= 100, "a status \(response.status) below 100 (RFC 9110 section 15)")
        let lines = response.headersStart..<(n - 2)
        fuzzExpect(
            isCleanHead(bytes[response.headersStart..<n]),
            "header lines with a control byte, obs-text or a bare CR or LF")
        if let reset = response.rateLimitReset { fuzzExpect(within(reset, lines), "rateLimitReset \(reset) not in") }
        for name in response.connectionNames {
            fuzzExpect(within(name, lines) && !name.isEmpty, "a Connection name \(name) not in the header lines")
        }
        let bodyless = requestWasHead || response.status == 204 || response.status == 304 || response.status < 200
        switch response.framing {
        case .none:
            fuzzExpect(bodyless, "no body for a \(response.status)")
        case .length(let length):
            fuzzExpect(!bodyless && length >= 0, "a length \(length) for a \(response.status)")
        case .chunked:
            fuzzExpect(!bodyless, "chunked for a \(response.status)")
        case .untilClose:
            fuzzExpect(!bodyless && !response.keepAlive, "until close, bodyless or kept alive")
        }
        let head = Array(bytes[0..<n])
        fuzzExpect(
            parseResponse(head, requestWasHead: requestWasHead, limit: limit) == parse,
            "the head alone reads differently")
        fuzzExpect(
            parseResponse(Array(head.dropLast()), requestWasHead: requestWasHead, limit: limit) == .incomplete,
            "the head less its last byte is not incomplete")
    }
}

// MARK: - Chunked bodies

/// An outcome with `.ended` counted from the start of the whole input, and the data bytes.
struct ChunkedReading: Equatable {
    var outcome: ChunkedFraming.Outcome
    var data: [UInt8]
}

/// Feeds `pieces` in turn until the body ends or is malformed, checking each piece's outcome and data ranges.
func readChunked(_ pieces: [ArraySlice<UInt8>]) -> ChunkedReading {
    var framing = ChunkedFraming()
    var data: [UInt8] = []
    var offset = 0
    for piece in pieces {
        var last = 0
        let outcome = Array(piece).withUnsafeBytes { bytes in
            framing.feed(bytes) { range in
                fuzzExpect(
                    !range.isEmpty && range.lowerBound >= last && range.upperBound <= bytes.count,
                    "data range \(range) out of order or outside a piece of \(bytes.count)")
                last = range.upperBound
                data += bytes[range]
            }
        }
        switch outcome {
        case .more:
            offset += piece.count
        case .ended(let n):
            fuzzExpect(n >= 0 && n <= piece.count && last <= n, "ended at \(n) in a piece of \(piece.count)")
            return ChunkedReading(outcome: .ended(offset + n), data: data)
        case .malformed:
            return ChunkedReading(outcome: .malformed, data: data)
        }
    }
    return ChunkedReading(outcome: .more, data: data)
}

/// RFC 9112 section 7.1 as `ChunkedFraming` reads it, on the whole input at once: sizes of 1 to 14 hex digits,
/// extensions and trailer lines without control bytes (tabs allowed), CRLF everywhere.
func referenceChunked(_ b: [UInt8]) -> ChunkedReading {
    var i = 0
    var data: [UInt8] = []
    func more() -> ChunkedReading { ChunkedReading(outcome: .more, data: data) }
    func malformed() -> ChunkedReading { ChunkedReading(outcome: .malformed, data: data) }
    func isControl(_ c: UInt8) -> Bool { c < 0x20 && c != 0x09 || c == 0x7F }
    while true {
        var size = 0
        var digits = 0
        while i < b.count, let h = RequestPath.hexValue(b[i]) {
            if digits == 14 { return malformed() }
            size = size * 16 + Int(h)
            digits += 1
            i += 1
        }
        guard i < b.count else { return more() }
        guard digits > 0 else { return malformed() }
        if b[i] == UInt8(ascii: ";") {
            i += 1
            while i < b.count, b[i] != 13 {
                if isControl(b[i]) { return malformed() }
                i += 1
            }
        }
        guard i < b.count else { return more() }
        guard b[i] == 13 else { return malformed() }
        i += 1
        guard i < b.count else { return more() }
        guard b[i] == 10 else { return malformed() }
        i += 1
        if size == 0 { break }
        let take = min(size, b.count - i)
        data += b[i..<(i + take)]
        i += take
        guard take == size else { return more() }
        for expected: UInt8 in [13, 10] {
            guard i < b.count else { return more() }
            guard b[i] == expected else { return malformed() }
            i += 1
        }
    }
    // Trailer lines, then the empty line.
    while true {
        guard i < b.count else { return more() }
        if b[i] == 13 {
            i += 1
            guard i < b.count else { return more() }
            guard b[i] == 10 else { return malformed() }
            return ChunkedReading(outcome: .ended(i + 1), data: data)
        }
        while i < b.count, b[i] != 13 {
            if isControl(b[i]) { return malformed() }
            i += 1
        }
        guard i < b.count else { return more() }
        i += 1
        guard i < b.count else { return more() }
        guard b[i] == 10 else { return malformed() }
        i += 1
    }
}

func checkChunked(_ bytes: [UInt8]) {
    let whole = readChunked([bytes[...]])
    let half = bytes.count / 2
    let halves = readChunked([bytes[..<half], bytes[half...]])
    fuzzExpect(halves == whole, "split at \(half): \(halves.outcome), whole: \(whole.outcome), or other data")
    let byByte = readChunked(bytes.indices.map { bytes[$0...$0] })
    fuzzExpect(byByte == whole, "byte by byte: \(byByte.outcome), whole: \(whole.outcome), or other data")
    let reference = referenceChunked(bytes)
    fuzzExpect(reference == whole, "a plain reading says \(reference.outcome), ChunkedFraming \(whole.outcome)")
}
