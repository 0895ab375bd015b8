import Foundation
import NIOCore
import NIOHTTP1

/// `PUT /credgate/v1/files/{filename}` with the file's bytes as the body (`curl -T license.pdf ...`): becomes the
/// platform's multipart upload. This filter only re-aims the request; the upload route's own filters (credentials,
/// ``UploadValidationFilter``) then check it and wrap the bytes in the multipart envelope.
struct RawUploadEndpoint: HeadFilter {
    static let prefix = "/credgate/v1/files/"
    /// The platform's upload path.
    let uploadPath: String

    func decodeHead(_ head: inout HTTPRequestHead, context: FilterContext) -> FilterHeadResult {
        let path = ProxyHandler.path(of: context.clientHead.uri)
        let segment = String(path.dropFirst(Self.prefix.count))
        guard let filename = RawUploadValidator.filename(fromPathSegment: segment), !filename.isEmpty else {
            return .problem(
                UploadRejection(
                    .invalidFilename,
                    "The file name in the URL is not valid percent-encoding. Use /credgate/v1/files/<name>.pdf."
                ).gatewayError, context)
        }
        context.scratch[UploadEndpointOptions.key] = UploadEndpointOptions(rawFilename: filename)
        head.method = .POST
        head.uri = uploadPath
        // The body is the file itself; the upload filter sets the multipart Content-Type.
        head.headers.remove(name: "content-type")
        return .proceed
    }
}
