/// Django REST Framework's `LimitOffsetPagination`, reproduced closely enough that a gateway rewriting
/// `next`/`previous` sees what the platform sends: the same limit/offset parsing and the same link building
/// (`replace_query_param` re-encodes the query with its keys sorted and `quote_plus` escaping).
struct LimitOffsetPage {
    static let defaultLimit = 10
    static let maxLimit = 100

    let limit: Int
    let offset: Int
    let count: Int

    init(query: [QueryParameter], count: Int) {
        // QueryDict.__getitem__ returns the last value of a repeated key.
        let limitValue = query.last { $0.name == "limit" }?.value
        let offsetValue = query.last { $0.name == "offset" }?.value
        if let raw = limitValue, let n = Self.positiveInt(raw), n > 0 {
            limit = min(n, Self.maxLimit)
        } else {
            limit = Self.defaultLimit
        }
        offset = offsetValue.flatMap(Self.positiveInt) ?? 0
        self.count = count
    }

    /// The slice of `items` this page shows.
    func slice<T>(_ items: [T]) -> ArraySlice<T> {
        guard offset < items.count else { return [] }
        return items[offset..<min(items.count, offset + limit)]
    }

    /// `next` link, or nil on the last page.
    func nextLink(base: String, query: [QueryParameter]) -> String? {
        guard offset + limit < count else { return nil }
        let q = Self.replacing(Self.replacing(query, "limit", String(limit)), "offset", String(offset + limit))
        return Self.link(base: base, query: q)
    }

    /// `previous` link, or nil on the first page.
    func previousLink(base: String, query: [QueryParameter]) -> String? {
        guard offset > 0 else { return nil }
        let withLimit = Self.replacing(query, "limit", String(limit))
        if offset - limit <= 0 {
            return Self.link(base: base, query: withLimit.filter { $0.name != "offset" })
        }
        return Self.link(base: base, query: Self.replacing(withLimit, "offset", String(offset - limit)))
    }

    // MARK: Python's int() and urllib, as far as they matter here

    /// `int(value)` for a non-negative decimal, else nil (DRF then falls back to its default).
    static func positiveInt(_ raw: String) -> Int? {
        var text = Substring(raw.trimmingASCIIWhitespace())
        if text.first == "+" { text = text.dropFirst() }
        guard !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(text)
    }

    /// `replace_query_param`: drop every value of `name`, set one.
    static func replacing(_ query: [QueryParameter], _ name: String, _ value: String) -> [QueryParameter] {
        query.filter { $0.name != name } + [QueryParameter(name: name, value: value)]
    }

    /// `urlunsplit` of the base with `urlencode(sorted(parse_qs(query).items()), doseq=True)`.
    static func link(base: String, query: [QueryParameter]) -> String {
        // A stable sort by key keeps the values of a repeated key in their original order, like parse_qs.
        let sorted = query.enumerated().sorted { a, b in
            a.element.name == b.element.name ? a.offset < b.offset : a.element.name < b.element.name
        }.map(\.element)
        guard !sorted.isEmpty else { return base }
        return base + "?" + sorted.map { quotePlus($0.name) + "=" + quotePlus($0.value) }.joined(separator: "&")
    }

    /// Python's `urllib.parse.quote_plus` with its default safe set.
    static func quotePlus(_ text: String) -> String {
        let hex = Array("0123456789ABCDEF".utf8)
        var out = [UInt8]()
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "."), UInt8(ascii: "-"),
                UInt8(ascii: "~"):
                out.append(byte)
            case UInt8(ascii: " "):
                out.append(UInt8(ascii: "+"))
            default:
                out.append(UInt8(ascii: "%"))
                out.append(hex[Int(byte >> 4)])
                out.append(hex[Int(byte & 0x0f)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension String {
    func trimmingASCIIWhitespace() -> Substring {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let start = firstIndex(where: { !isSpace($0) }) else { return "" }
        let end = lastIndex(where: { !isSpace($0) })!
        return self[start...end]
    }
}
