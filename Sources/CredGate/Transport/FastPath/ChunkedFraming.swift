/// Follows a chunked body's framing (RFC 9112 section 7.1) as its bytes stream by, so that the fast path can relay
/// the bytes exactly as the upstream sent them and still know where the body ends (and, when it holds an answer
/// for `rewrite_links`, which bytes are data). Strict: a size line with anything but hex digits and an extension,
/// a missing CRLF, or a size over 2^56 is malformed.
struct ChunkedFraming: Equatable {
    enum State: Equatable {
        case size(value: Int, digits: Int)
        case sizeExtension(value: Int)
        case sizeLF(value: Int)
        case data(remaining: Int)
        case dataCR
        case dataLF
        case trailerStart
        case trailer
        case trailerLF
        case finalLF
        case done
    }

    enum Outcome: Equatable {
        /// Every byte given belongs to the body; more is to come.
        case more
        /// The body ends after the first `n` bytes given (the rest is not part of it).
        case ended(Int)
        case malformed
    }

    private(set) var state: State = .size(value: 0, digits: 0)

    /// Reads `bytes`; `data` is called with each run of data bytes (offsets into `bytes`).
    mutating func feed(_ bytes: UnsafeRawBufferPointer, data: (Range<Int>) -> Void = { _ in }) -> Outcome {
        var i = 0
        let n = bytes.count
        while i < n {
            let c = bytes[i]
            switch state {
            case .size(let value, let digits):
                if let h = RequestPath.hexValue(c) {
                    guard digits < 14 else { return .malformed }
                    state = .size(value: value << 4 | Int(h), digits: digits + 1)
                } else if digits > 0 && c == UInt8(ascii: ";") {
                    state = .sizeExtension(value: value)
                } else if digits > 0 && c == 0x0D {
                    state = .sizeLF(value: value)
                } else {
                    return .malformed
                }
                i += 1
            case .sizeExtension(let value):
                if c == 0x0D {
                    state = .sizeLF(value: value)
                } else if c < 0x20 && c != 0x09 || c == 0x7F {
                    return .malformed
                }
                i += 1
            case .sizeLF(let value):
                guard c == 0x0A else { return .malformed }
                state = value == 0 ? .trailerStart : .data(remaining: value)
                i += 1
            case .data(let remaining):
                let take = min(remaining, n - i)
                data(i..<(i + take))
                i += take
                state = remaining == take ? .dataCR : .data(remaining: remaining - take)
            case .dataCR:
                guard c == 0x0D else { return .malformed }
                state = .dataLF
                i += 1
            case .dataLF:
                guard c == 0x0A else { return .malformed }
                state = .size(value: 0, digits: 0)
                i += 1
            case .trailerStart:
                state = c == 0x0D ? .finalLF : .trailer
                if c != 0x0D && (c < 0x20 && c != 0x09 || c == 0x7F) { return .malformed }
                i += 1
            case .trailer:
                if c == 0x0D {
                    state = .trailerLF
                } else if c < 0x20 && c != 0x09 || c == 0x7F {
                    return .malformed
                }
                i += 1
            case .trailerLF:
                guard c == 0x0A else { return .malformed }
                state = .trailerStart
                i += 1
            case .finalLF:
                guard c == 0x0A else { return .malformed }
                state = .done
                return .ended(i + 1)
            case .done:
                return .ended(i)
            }
        }
        return state == .done ? .ended(n) : .more
    }
}
