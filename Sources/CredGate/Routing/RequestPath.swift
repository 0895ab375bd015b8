/// The path a request is matched on, and whether it can be matched safely at all.
///
/// A route's checks must not depend on how the client spelled the path: a platform that decodes or normalises
/// paths (as WSGI servers and most frameworks do) reads `/files/%68andle/` as `/files/handle/`, so credgate must
/// match it as that too, or the upload route's checks are skipped by a request that reaches the same handler on
/// the catch-all route. The rule (RFC 3986 section 6.2.2, made strict where the standard leaves room):
///
/// - Percent-encoded *unreserved* characters (`A-Z a-z 0-9 - . _ ~`) are decoded; the path so normalised is the
///   one matched and the one forwarded. A path with nothing to decode is forwarded byte for byte as sent.
/// - Refused (400), because no single reading of them is safe: an encoded `/` (`%2F`), a `\` or `;` in any
///   encoding (Tomcat and Spring read `;` as a parameter separator, so `/handle/;x` or `/..;/` reach other
///   handlers), an encoded NUL, an empty segment (`//`, which some servers merge), a `.` or `..` segment in any
///   encoding (`%2e`, double-encoded `%252e`, overlong UTF-8 `%c0%ae`, full-width `．`), a percent sign not
///   followed by two hex digits, bytes that must be percent-encoded (controls, space, non-ASCII), and
///   percent-encoded bytes that are not UTF-8.
/// - Literal segments of route patterns match without regard to ASCII case (``PathPattern``), so
///   `/files/HANDLE/` takes the same route as `/files/handle/`; the bytes forwarded keep the client's case.
///
/// A route can opt out (`raw_path: true`): a refused path may still take it, matched and forwarded as sent.
enum RequestPath {
    public enum Outcome: Equatable, Sendable {
        /// Nothing to normalise: match and forward the path as sent.
        case unchanged
        /// Match and forward this path instead.
        case normalized(String)
        /// A `.` or `..` segment, in any encoding: the path would climb out of its route.
        case climbsOut
        /// No safe reading: the reason, as the end of a sentence.
        case refused(String)
    }

    /// Normalises the path of an origin-form request target (without its query). `path` starts with `/`.
    static func normalize(_ path: Substring) -> Outcome {
        let utf8 = path.utf8
        // Fast path (nearly every request): only unreserved characters and '/', no '//' and no dot segment.
        var previous: UInt8 = 0
        var plain = true
        for byte in utf8 {
            if !isPlainPathByte(byte, after: previous) {
                plain = false
                break
            }
            previous = byte
        }
        if plain { return .unchanged }
        return slowPath(Array(utf8))
    }

    /// Whether `byte`, after `previous` (0 at the start), keeps a path plain: unreserved characters and '/', no
    /// '//' and no dot segment. A plain path is matched and forwarded as sent.
    @inline(__always)
    static func isPlainPathByte(_ byte: UInt8, after previous: UInt8) -> Bool {
        if !isUnreserved(byte) && byte != UInt8(ascii: "/") { return false }
        if byte == UInt8(ascii: "/") && previous == UInt8(ascii: "/") { return false }
        if byte == UInt8(ascii: ".") && (previous == UInt8(ascii: "/") || previous == UInt8(ascii: ".")) {
            return false
        }
        return true
    }

    private static func slowPath(_ bytes: [UInt8]) -> Outcome {
        // 1. Decode percent-encoded unreserved characters; refuse what can never be read safely.
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var changed = false
        var i = 0
        while i < bytes.count {
            let byte = bytes[i]
            if byte == UInt8(ascii: "%") {
                guard i + 2 < bytes.count, let hi = hexValue(bytes[i + 1]), let lo = hexValue(bytes[i + 2]) else {
                    return .refused("it has a '%' that is not followed by two hexadecimal digits")
                }
                let value = hi << 4 | lo
                switch value {
                case UInt8(ascii: "/"): return .refused("it has an encoded '/' (%2F)")
                case UInt8(ascii: "\\"): return .refused("it has an encoded '\\' (%5C)")
                case UInt8(ascii: ";"): return .refused("it has an encoded ';' (%3B)")
                case 0: return .refused("it has an encoded NUL byte (%00)")
                default: break
                }
                if isUnreserved(value) {
                    out.append(value)
                    changed = true
                } else {
                    out.append(contentsOf: bytes[i...(i + 2)])
                }
                i += 3
                continue
            }
            switch byte {
            case UInt8(ascii: "\\"): return .refused("it has a '\\'")
            case UInt8(ascii: ";"): return .refused("it has a ';' (a path parameter, which servers read differently)")
            case 0...0x20, 0x7F...0xFF: return .refused("it has a byte that must be percent-encoded")
            default: out.append(byte)
            }
            i += 1
        }
        // 2. Every segment, decoded as far as it goes, must be a real name: not empty, not a dot segment.
        let segments = out.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).dropFirst()
        for (index, segment) in segments.enumerated() {
            if segment.isEmpty {
                // A trailing slash is an empty last segment, as in `/users/`.
                if index == segments.count - 1 { continue }
                return .refused("it has an empty segment ('//')")
            }
            switch segmentProblem(Array(segment)) {
            case nil: break
            case .climbsOut?: return .climbsOut
            case .refused(let why)?: return .refused(why)
            case .unchanged?, .normalized?: break
            }
        }
        return changed ? .normalized(String(decoding: out, as: UTF8.self)) : .unchanged
    }

    /// Why a segment (with unreserved characters already decoded) is unsafe, decoding it again as a server that
    /// decodes twice would; nil when it is fine.
    private static func segmentProblem(_ segment: [UInt8]) -> Outcome? {
        var current = segment
        // Three rounds cover `%2e`, `%252e` and `%25252e`; a segment still changing after that is refused.
        for _ in 0..<3 {
            guard let text = String(validating: current, as: UTF8.self) else {
                return .refused("a segment is not valid UTF-8 once decoded (an overlong or broken encoding)")
            }
            var dotsOnly = true
            for scalar in text.unicodeScalars {
                switch scalar {
                case "/": return .refused("a segment holds a '/' once decoded again (a double-encoded '/')")
                case "\\": return .refused("a segment holds a '\\' once decoded again")
                case ";": return .refused("a segment holds a ';' once decoded again")
                case "\u{0}": return .refused("a segment holds a NUL byte once decoded again")
                // '.', and what Unicode normalisation (NFKC) or lax decoders turn into it.
                case ".", "\u{FF0E}", "\u{FE52}", "\u{2024}": break
                default: dotsOnly = false
                }
            }
            if dotsOnly && text.unicodeScalars.count <= 2 { return .climbsOut }
            guard let decoded = percentDecoded(current) else { return nil }
            current = decoded
        }
        return .refused("a segment is percent-encoded more than three times over")
    }

    /// The bytes with every valid `%XX` decoded; nil when there was none.
    private static func percentDecoded(_ bytes: [UInt8]) -> [UInt8]? {
        guard bytes.contains(UInt8(ascii: "%")) else { return nil }
        var out: [UInt8] = []
        var changed = false
        var i = 0
        while i < bytes.count {
            if bytes[i] == UInt8(ascii: "%"), i + 2 < bytes.count, let hi = hexValue(bytes[i + 1]),
                let lo = hexValue(bytes[i + 2])
            {
                out.append(hi << 4 | lo)
                changed = true
                i += 3
            } else {
                out.append(bytes[i])
                i += 1
            }
        }
        return changed ? out : nil
    }

    /// RFC 3986 `unreserved`.
    static func isUnreserved(_ c: UInt8) -> Bool {
        switch c {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
            return true
        default:
            return false
        }
    }

    static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): return c - UInt8(ascii: "A") + 10
        default: return nil
        }
    }
}
