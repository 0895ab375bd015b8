import Foundation

/// A path-style S3 request target (`/bucket/key?query`) as a client sent it, taken apart: the bucket, the key and
/// the query, all percent-decoded, so the signing route can check the bucket and sign the request in S3's
/// canonical encoding whatever encoding the client chose.
struct S3RequestTarget: Sendable, Hashable {
    /// The first path segment; "" for `/` (ListBuckets).
    var bucket: String
    /// Everything after `/<bucket>/`; "" addresses the bucket itself.
    var key: String
    /// The query in the order sent; a bare name (`?uploads`) has a nil value.
    var query: [AWSSigV4.QueryItem]

    /// Nil when a part is not valid percent-encoded UTF-8.
    init?(uri: String) {
        let pathEnd = uri.firstIndex(of: "?") ?? uri.endIndex
        var path = uri[..<pathEnd]
        guard path.first == "/" else { return nil }
        path = path.dropFirst()
        let slash = path.firstIndex(of: "/")
        guard let bucket = String(path[..<(slash ?? path.endIndex)]).removingPercentEncoding else { return nil }
        let rawKey = slash.map { String(path[path.index(after: $0)...]) } ?? ""
        guard let key = rawKey.removingPercentEncoding else { return nil }
        var query: [AWSSigV4.QueryItem] = []
        if pathEnd < uri.endIndex {
            for pair in uri[uri.index(after: pathEnd)...].split(separator: "&", omittingEmptySubsequences: true) {
                let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                guard let name = String(parts[0]).removingPercentEncoding else { return nil }
                if parts.count == 1 {
                    query.append(.init(name, nil))
                } else {
                    guard let value = String(parts[1]).removingPercentEncoding else { return nil }
                    query.append(.init(name, value))
                }
            }
        }
        self.bucket = bucket
        self.key = key
        self.query = query
    }
}
