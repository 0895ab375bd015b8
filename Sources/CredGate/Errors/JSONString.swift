/// JSON string quoting for the few small bodies the gateway writes itself.
///
/// Written by hand rather than through `JSONEncoder` because it runs on the event loop for every gateway error
/// and needs no Foundation; it follows RFC 8259 section 7 exactly.
enum JSONString {
    static func quote(_ s: String) -> String {
        "\"" + escape(s) + "\""
    }

    /// `s` escaped for use between the quotes of a JSON string.
    static func escape(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
