extension AWSSigV4 {
    /// One query parameter, decoded. `value` is nil for a bare name (`?uploads`), which S3 uses for
    /// sub-resources: it is written bare on the wire and signed as `uploads=`.
    struct QueryItem: Sendable, Hashable {
        var name: String
        var value: String?

        init(_ name: String, _ value: String?) {
            self.name = name
            self.value = value
        }
    }

    /// One header field as the caller has it; the signer lower-cases and trims it for the canonical form.
    struct HeaderField: Sendable, Hashable {
        var name: String
        var value: String

        init(_ name: String, _ value: String) {
            self.name = name
            self.value = value
        }
    }

    /// RFC 3986 percent-encoding as SigV4 wants it ("URI-encode" in "Create a canonical request"): the
    /// unreserved characters `A-Z a-z 0-9 - . _ ~` stay, every other byte of the UTF-8 becomes `%XX` with
    /// upper-case hex, so a space is `%20` (never `+`), `+` is `%2B` and `é` is `%C3%A9`. `/` stays only when
    /// `keepingSlashes` (object keys in a path, as botocore's serializer writes `{Key+}`).
    ///
    /// This is exactly Python's `quote(text, safe="-_.~")` (`safe="/~"` with slashes), which botocore uses for
    /// keys, query names and values.
    static func uriEncode(_ text: String, keepingSlashes: Bool = false) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(text.utf8.count)
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: "~"):
                out.append(byte)
            case UInt8(ascii: "/") where keepingSlashes:
                out.append(byte)
            default:
                out.append(UInt8(ascii: "%"))
                out.append(hexDigits[Int(byte >> 4)])
                out.append(hexDigits[Int(byte & 0x0f)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The query string to send, in the caller's order (S3 does not care about order on the wire; botocore
    /// keeps the operation's order, and so does this, so URLs come out identical).
    static func wireQuery(_ items: [QueryItem]) -> String {
        items.map { item in
            let name = uriEncode(item.name)
            guard let value = item.value else { return name }
            return name + "=" + uriEncode(value)
        }.joined(separator: "&")
    }

    /// The canonical query string: every parameter encoded, sorted by encoded name and then by encoded value
    /// (byte order, so `X-Amz-*` sorts before `response-*`), joined as `name=value` with `&`; a bare name signs
    /// as `name=`. ("Create a canonical request", CanonicalQueryString.)
    static func canonicalQuery(_ items: [QueryItem]) -> String {
        canonicalQuery(encoded: items.map { (uriEncode($0.name), $0.value.map { uriEncode($0) } ?? "") })
    }

    /// The same, for pairs already encoded (the presigner's own `X-Amz-*` parameters among them).
    static func canonicalQuery(encoded pairs: [(name: String, value: String)]) -> String {
        pairs.sorted { a, b in
            a.name == b.name
                ? a.value.utf8.lexicographicallyPrecedes(b.value.utf8)
                : a.name.utf8.lexicographicallyPrecedes(b.name.utf8)
        }.map { $0.name + "=" + $0.value }.joined(separator: "&")
    }

    /// Canonical headers and the signed-headers list ("Create a canonical request", CanonicalHeaders and
    /// SignedHeaders):
    /// - names lower-cased and sorted (byte order);
    /// - a name that appears more than once gets one line, its values joined by `,` in the order given;
    /// - each value trimmed and every run of whitespace inside it collapsed to one space (AWS's `Trimall`);
    /// - every line ends with `\n`, so the block is followed by the blank line the canonical request needs.
    ///
    /// The caller decides which headers are signed; names in ``unsignedHeaderNames`` are skipped whatever it
    /// passes.
    static func canonicalHeaders(_ fields: [HeaderField]) -> (canonical: String, signedHeaders: String) {
        var valuesByName: [String: [String]] = [:]
        for field in fields {
            let name = field.name.lowercased()
            guard !unsignedHeaderNames.contains(name) else { continue }
            valuesByName[name, default: []].append(trimAll(field.value))
        }
        let names = valuesByName.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        var canonical = ""
        for name in names {
            canonical += name + ":" + valuesByName[name]!.joined(separator: ",") + "\n"
        }
        return (canonical, names.joined(separator: ";"))
    }

    /// AWS's `Trimall`: no whitespace at either end, one space for every run inside.
    ///
    /// Whitespace is what botocore's `' '.join(value.split())` splits on, Python's `str.isspace`: Unicode's
    /// White_Space property plus the ASCII separators U+001C to U+001F. A header value with a no-break space in
    /// it is rare, but signing it differently from the reference would fail only for that value.
    static func trimAll(_ value: String) -> String {
        var out = String.UnicodeScalarView()
        var pendingSpace = false
        for scalar in value.unicodeScalars {
            if scalar.properties.isWhitespace || (0x1C...0x1F).contains(scalar.value) {
                pendingSpace = !out.isEmpty
            } else {
                if pendingSpace { out.append(" ") }
                pendingSpace = false
                out.append(scalar)
            }
        }
        return String(out)
    }

    /// The canonical request: six lines joined by `\n` ("Create a canonical request"). `path` is the encoded
    /// path exactly as it goes on the wire: S3 signs it as sent, with no normalisation (`/a/../b` and `//` stay)
    /// and no second round of encoding (`%20` is not turned into `%2520`).
    static func canonicalRequest(
        method: String, path: String, canonicalQuery: String, canonicalHeaders: String, signedHeaders: String,
        payloadHash: String
    ) -> String {
        method.uppercased() + "\n" + path + "\n" + canonicalQuery + "\n" + canonicalHeaders + "\n" + signedHeaders
            + "\n" + payloadHash
    }

    static let hexDigits = Array("0123456789ABCDEF".utf8)
}
