#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// WriftAI's cursor pagination: query `cursor` and `page_size`, answer `{"items", "next_cursor", "previous_cursor"}`
/// and nothing else (SDK 0.34 builds its `PaginatedResponse` from exactly these three keys, and fails on any other).
/// SDK 0.28's `PaginatedResponse` also requires `next_url` and `previous_url` (absolute links to the pages): the
/// answer carries them when `linkBase` is given (``WriftAISandboxOptions/pageURLs``).
///
/// Cursors are opaque to clients; here they are the base64url of `o<offset>`, so a test can tell them apart but a
/// client cannot guess them.
struct CursorPage {
    static let defaultPageSize = 20
    static let maxPageSize = 100

    let offset: Int
    let pageSize: Int

    /// Reads `cursor` and `page_size`; the 400/422 to answer when either is not valid.
    static func parse(_ query: [QueryParameter]) -> Result<CursorPage, ResponseError> {
        var pageSize = defaultPageSize
        if let raw = query.last(where: { $0.name == "page_size" })?.value {
            guard let n = LimitOffsetPage.positiveInt(raw), (1...maxPageSize).contains(n) else {
                return .failure(
                    ResponseError(
                        WriftAIProblem.invalid("page_size", "must be a whole number from 1 to \(maxPageSize)")))
            }
            pageSize = n
        }
        var offset = 0
        if let raw = query.last(where: { $0.name == "cursor" })?.value, !raw.isEmpty {
            guard let decoded = decode(raw) else {
                return .failure(ResponseError(WriftAIProblem.response(.badRequest, "Invalid cursor.")))
            }
            offset = decoded
        }
        return .success(CursorPage(offset: offset, pageSize: pageSize))
    }

    /// The page of `items` as the platform answers it; with `linkBase` (the list's absolute URL, no query) also
    /// `next_url` and `previous_url`.
    func answer(_ items: [JSONValue], linkBase: String? = nil) -> JSONValue {
        let start = min(offset, items.count)
        let end = min(items.count, start + pageSize)
        let next = end < items.count ? Self.encode(end) : nil
        let previous = start > 0 ? Self.encode(max(0, start - pageSize)) : nil
        var members: [(String, JSONValue)] = [
            ("items", .array(Array(items[start..<end]))),
            ("next_cursor", .optional(next)),
            ("previous_cursor", .optional(previous)),
        ]
        if let linkBase {
            let link = { (cursor: String?) in cursor.map { "\(linkBase)?cursor=\($0)&page_size=\(pageSize)" } }
            members += [("next_url", .optional(link(next))), ("previous_url", .optional(link(previous)))]
        }
        return .object(members)
    }

    static func encode(_ offset: Int) -> String {
        Data("o\(offset)".utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(
                of: "=", with: "")
    }

    static func decode(_ cursor: String) -> Int? {
        var text = cursor.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while text.count % 4 != 0 { text += "=" }
        guard let data = Data(base64Encoded: text), let plain = String(data: data, encoding: .utf8), plain.first == "o"
        else {
            return nil
        }
        return LimitOffsetPage.positiveInt(String(plain.dropFirst()))
    }
}
