/// A request target (`/path?query`) split without decoding, so the sandbox can match and echo it byte-exact.
struct RequestTarget: Sendable {
    /// Everything before the first `?`, still percent-encoded.
    let path: String
    /// Everything after the first `?`; nil when there is no `?`.
    let query: String?

    init(_ raw: String) {
        if let mark = raw.firstIndex(of: "?") {
            path = String(raw[..<mark])
            query = String(raw[raw.index(after: mark)...])
        } else {
            path = raw
            query = nil
        }
    }

    /// Query parameters decoded the way Python's `parse_qsl(keep_blank_values=True)` does.
    var parameters: [QueryParameter] {
        guard let query, !query.isEmpty else { return [] }
        return query.split(separator: "&", omittingEmptySubsequences: true).map { part in
            if let eq = part.firstIndex(of: "=") {
                return QueryParameter(
                    name: Self.formDecode(part[..<eq]), value: Self.formDecode(part[part.index(after: eq)...]))
            }
            return QueryParameter(name: Self.formDecode(part), value: "")
        }
    }

    /// `+` to space, then `%XX` to bytes; malformed escapes are kept as they are, invalid UTF-8 is replaced.
    static func formDecode(_ text: Substring) -> String {
        let bytes = Array(text.utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            let byte = bytes[i]
            if byte == UInt8(ascii: "+") {
                out.append(UInt8(ascii: " "))
            } else if byte == UInt8(ascii: "%"), i + 2 < bytes.count,
                let hi = hexValue(bytes[i + 1]), let lo = hexValue(bytes[i + 2])
            {
                out.append(hi << 4 | lo)
                i += 3
                continue
            } else {
                out.append(byte)
            }
            i += 1
        }
        return String(decoding: out, as: UTF8.self)
    }

    private static func hexValue(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}

/// One decoded `name=value` pair of a query string, in order.
struct QueryParameter: Sendable, Equatable {
    var name: String
    var value: String
}
