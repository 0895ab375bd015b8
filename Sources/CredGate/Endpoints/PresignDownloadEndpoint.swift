import Foundation
import NIOCore
import NIOHTTP1

/// `GET /credgate/v1/files/download?s3_url=s3://bucket/key`: a redirect to a presigned URL of the file (from the
/// presign cache when it has one), so `curl -L` and browsers fetch the file with no JSON step. The request becomes
/// the platform's presign call; the route's ``PresignCacheFilter`` answers it, as a redirect.
struct PresignDownloadEndpoint: HeadFilter, BodyFilter {
    static let path = "/credgate/v1/files/download"
    /// Tells the presign filter to answer with a redirect.
    static let redirectKey = ScratchKey<Bool>("presign.redirect")
    private static let bodyKey = ScratchKey<String>("presign.download.body")
    /// The platform's presign path.
    let presignPath: String

    func decodeHead(_ head: inout HTTPRequestHead, context: FilterContext) -> FilterHeadResult {
        guard let s3URL = Self.queryValue("s3_url", in: context.clientHead.uri), !s3URL.isEmpty else {
            return .problem(.invalidDownloadRequest, context)
        }
        let body = "{\"s3_url\":\(JSONString.quote(s3URL)),\"presigned_url\":\"\"}"
        context.scratch[Self.redirectKey] = true
        context.scratch[Self.bodyKey] = body
        head.method = .POST
        head.uri = presignPath
        head.headers.replaceOrAdd(name: "content-type", value: "application/json")
        // The transport collects a body only when the head announces one.
        HeaderHygiene.setContentLength(&head.headers, body.utf8.count)
        return .proceed
    }

    /// The client sends no body: this filter supplies the presign call's.
    func bodyBufferLimit(for head: HTTPRequestHead, context: FilterContext) -> Int? { PresignCacheFilter.requestLimit }

    func decodeBody(_ body: inout ByteBuffer, head: inout HTTPRequestHead, context: FilterContext) -> FilterHeadResult {
        if let json = context.scratch[Self.bodyKey] { body = ByteBuffer(string: json) }
        return .proceed
    }

    /// The last value of `name` in the query, percent-decoded (`+` is kept: S3 keys may hold it).
    static func queryValue(_ name: String, in uri: String) -> String? {
        guard let q = uri.firstIndex(of: "?") else { return nil }
        var found: String?
        for pair in uri[uri.index(after: q)...].split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts[0] == name else { continue }
            found = parts.count > 1 ? String(parts[1]).removingPercentEncoding : ""
        }
        return found
    }
}
