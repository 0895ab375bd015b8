import NIOCore
import NIOHTTP1

/// Writes a static API key into its header (`x-api-key: <key>`).
struct APIKeyFilter: SplicingFilter {
    let header: String
    let value: Secret

    func decodeHead(_ head: inout HTTPRequestHead, context: FilterContext) -> FilterHeadResult {
        head.headers.replaceOrAdd(name: header, value: value.reveal())
        return .proceed
    }

    func splice(into head: inout ByteBuffer) -> SpliceOutcome {
        // The fast path only takes requests that carry no credential header of their own, so adding is replacing.
        head.writeHeaderLine(header, value.reveal())
        return .spliced
    }
}

/// Removes whatever credentials the client sent: `Authorization` and `Proxy-Authorization` always, and every
/// header any configured credential writes, so a client can never smuggle its own key past the gateway.
struct StripClientCredentials: SplicingFilter {
    let names: [String]

    init(credentialHeaders: some Sequence<String>) {
        var all = Set(credentialHeaders.map { $0.lowercased() })
        all.insert("authorization")
        all.insert("proxy-authorization")
        self.names = all.sorted()
    }

    func decodeHead(_ head: inout HTTPRequestHead, context: FilterContext) -> FilterHeadResult {
        // One pass to find out whether there is anything to strip (usually not), then the removals.
        let names = self.names
        guard
            head.headers.contains(where: { header in
                names.contains {
                    $0.utf8.count == header.name.utf8.count && HeaderHygiene.equalsLowercased(header.name, $0)
                }
            })
        else { return .proceed }
        for name in names { head.headers.remove(name: name) }
        return .proceed
    }

    /// Nothing to write: the fast path sends every request that carries one of ``names`` (the runtime's
    /// `protectedHeaders`, the same list) to the full path.
    func splice(into head: inout ByteBuffer) -> SpliceOutcome { .spliced }
}
