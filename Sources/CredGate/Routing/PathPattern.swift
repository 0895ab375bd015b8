/// A route's path pattern: literal segments, `{param}` segments that take any one non-empty segment, and an
/// optional trailing `**` that takes the rest of the path (zero or more segments).
///
/// Paths are compared segment by segment after ``RequestPath`` normalised them (unreserved characters decoded,
/// anything ambiguous refused), and a trailing slash is an empty last segment, so `/users/` and `/users` are
/// different paths. Literal segments match without regard to ASCII case: a platform that routes
/// case-insensitively must not let `/files/HANDLE/` skip the checks of the `/files/handle/` route.
struct PathPattern: Sendable, Hashable, CustomStringConvertible {
    enum Segment: Sendable, Hashable {
        case literal(String)
        case param(String)
        case wildcard
    }

    let segments: [Segment]
    /// The pattern as written.
    let description: String
    /// ``segments`` for ``matches(bytes:)``, made once: every request is matched against several patterns. Plain
    /// values (a literal is a range of ``literalBytes``), so that walking them retains and releases nothing.
    private let byteSegments: [ByteSegment]
    /// The literals' bytes, in ASCII lower case, one after the other.
    private let literalBytes: [UInt8]

    private enum ByteSegment: Sendable, Hashable {
        case literal(start: Int, count: Int)
        case param
        case wildcard
    }

    enum ParseError: Error, Equatable, CustomStringConvertible {
        case mustStartWithSlash
        case wildcardNotLast
        case badSegment(String)

        var description: String {
            switch self {
            case .mustStartWithSlash: return "a path pattern must start with '/'"
            case .wildcardNotLast: return "'**' may only be the last segment"
            case .badSegment(let s): return "bad segment '\(s)' (use a literal, '{name}' or a final '**')"
            }
        }
    }

    init(_ pattern: String) throws(ParseError) {
        guard pattern.hasPrefix("/") else { throw .mustStartWithSlash }
        let parts = pattern.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        var segments: [Segment] = []
        for (i, part) in parts.enumerated() {
            if part == "**" {
                guard i == parts.count - 1 else { throw .wildcardNotLast }
                segments.append(.wildcard)
            } else if part.hasPrefix("{") && part.hasSuffix("}") && part.count > 2 {
                let name = part.dropFirst().dropLast()
                guard name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                    throw .badSegment(String(part))
                }
                segments.append(.param(String(name)))
            } else if part.contains("{") || part.contains("}") || part.contains("*") || part.contains("?") {
                throw .badSegment(String(part))
            } else {
                segments.append(.literal(String(part)))
            }
        }
        self.segments = segments
        self.description = pattern
        var literalBytes: [UInt8] = []
        self.byteSegments = segments.map { segment in
            switch segment {
            case .literal(let text):
                let start = literalBytes.count
                literalBytes += text.utf8.map { $0 >= 0x41 && $0 <= 0x5A ? $0 | 0x20 : $0 }
                return .literal(start: start, count: literalBytes.count - start)
            case .param: return .param
            case .wildcard: return .wildcard
            }
        }
        self.literalBytes = literalBytes
    }

    /// Whether `path` (the request target's path, without the query) matches. `path` must start with `/`.
    func matches(_ path: Substring) -> Bool {
        // A request's path is contiguous: compare its bytes in place (the generic UTF-8 view walk below cost
        // several per cent of a request's CPU, over the dozen patterns a request meets).
        if !path.isEmpty, let matched = path.utf8.withContiguousStorageIfAvailable({ matches(bytes: $0) }) {
            return matched
        }
        return matchesByView(path)
    }

    /// ``matches(_:)`` on the bytes of a path that starts with `/`.
    func matches(bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        let n = bytes.count
        var i = 1
        var done = false // no segment left in the path
        for segment in byteSegments {
            if case .wildcard = segment { return true }
            if done { return false }
            var j = i
            while j < n && bytes[j] != UInt8(ascii: "/") { j += 1 }
            switch segment {
            case .literal(let start, let count):
                guard j - i == count else { return false }
                var k = 0
                while k < count {
                    let c = bytes[i + k]
                    if (c >= 0x41 && c <= 0x5A ? c | 0x20 : c) != literalBytes[start + k] { return false }
                    k += 1
                }
            case .param:
                if j == i { return false }
            case .wildcard:
                return true
            }
            if j >= n {
                done = true
            } else {
                i = j + 1
            }
        }
        return done
    }

    /// The matcher of any UTF-8 view (and the reference ``matches(bytes:)`` is tested against).
    func matchesByView(_ path: Substring) -> Bool {
        var rest = path.utf8.dropFirst()
        var done = false // no segment left in the path
        for segment in segments {
            if case .wildcard = segment { return true }
            if done { return false }
            let taken: Substring.UTF8View.SubSequence
            if let slash = rest.firstIndex(of: UInt8(ascii: "/")) {
                taken = rest[rest.startIndex..<slash]
                rest = rest[rest.index(after: slash)...]
            } else {
                taken = rest
                done = true
            }
            switch segment {
            case .literal(let literal):
                if !Self.equalIgnoringASCIICase(literal.utf8, taken) { return false }
            case .param:
                if taken.isEmpty { return false }
            case .wildcard:
                return true
            }
        }
        return done
    }

    /// Whether every path this other pattern matches is matched by `self` too (used to find shadowed routes).
    func covers(_ other: PathPattern) -> Bool {
        var i = 0
        while i < segments.count {
            let mine = segments[i]
            if case .wildcard = mine { return true }
            guard i < other.segments.count else { return false }
            switch (mine, other.segments[i]) {
            case (.literal(let a), .literal(let b)):
                if !Self.equalIgnoringASCIICase(a.utf8, b.utf8[...]) { return false }
            case (.literal, _):
                return false
            case (.param, .wildcard):
                return false
            case (.param, _):
                // A param takes any non-empty segment; an empty literal is not covered.
                if case .literal(let b) = other.segments[i], b.isEmpty { return false }
            case (.wildcard, _):
                return true
            }
            i += 1
        }
        return other.segments.count == segments.count
    }

    static func equalIgnoringASCIICase(_ a: String.UTF8View, _ b: Substring.UTF8View.SubSequence) -> Bool {
        a.elementsEqual(b) { x, y in
            x == y || (x | 0x20 == y | 0x20 && (x | 0x20) >= UInt8(ascii: "a") && (x | 0x20) <= UInt8(ascii: "z"))
        }
    }
}
