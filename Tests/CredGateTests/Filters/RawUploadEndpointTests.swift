import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import CredGate

/// ``RawUploadEndpoint``: `PUT /credgate/v1/files/{name}` re-aimed at the platform's upload call, the file name
/// (percent-decoded) left for the upload filter, which runs next on the same chain.
@Suite struct RawUploadEndpointTests {
    static let uploadPath = "/api/v1/files/handle/"
    let endpoint = RawUploadEndpoint(uploadPath: RawUploadEndpointTests.uploadPath)

    private static func put(
        _ uri: String, length: Int = FilterSamples.pdf.count, contentType: String? = "application/pdf"
    ) -> HTTPRequestHead {
        var headers: HTTPHeaders = ["host": "gw", "content-length": String(length)]
        if let contentType { headers.add(name: "Content-Type", value: contentType) }
        return FilterTest.head(.PUT, uri, headers)
    }

    @Test(arguments: [
        ("/credgate/v1/files/license.pdf", "license.pdf"),
        ("/credgate/v1/files/Board%20License.PDF", "Board License.PDF"),
        ("/credgate/v1/files/caf%C3%A9.png?x=1&name=ignored", "café.png"),
        ("/credgate/v1/files/a+b.jpg", "a+b.jpg"),
    ])
    func theRequestBecomesThePlatformsUploadCall(uri: String, filename: String) throws {
        let loop = EmbeddedEventLoop()
        let client = Self.put(uri)
        let context = FilterTest.context(client, on: loop)
        var head = client
        #expect(endpoint.decodeHead(&head, context: context).isProceed)
        #expect(head.method == .POST)
        #expect(head.uri == Self.uploadPath)
        #expect(!head.headers.contains(name: "content-type"), "the upload filter writes the multipart Content-Type")
        #expect(head.headers["content-length"] == [String(FilterSamples.pdf.count)])
        #expect(head.headers["host"] == ["gw"])
        let options = try #require(context.scratch[UploadEndpointOptions.key])
        #expect(options.rawFilename == filename)
        #expect(!options.captureFields)
        #expect(options.requiredFields.isEmpty)
    }

    /// A name that is not valid percent-encoding, or none at all, is refused before anything else runs:
    /// `upload-invalid-filename` (422, the status the catalogue and README give it).
    @Test(arguments: [
        "/credgate/v1/files/%ZZ.pdf", "/credgate/v1/files/bad%", "/credgate/v1/files/%C3.pdf", "/credgate/v1/files/",
        "/credgate/v1/files/?name=x.pdf",
    ])
    func aNameThatDoesNotDecodeIsRefused(uri: String) throws {
        let loop = EmbeddedEventLoop()
        let client = Self.put(uri)
        let context = FilterTest.context(client, on: loop)
        var head = client
        let result = endpoint.decodeHead(&head, context: context)
        FilterTest.expectProblem(result.stopResponse, status: 422, code: "upload-invalid-filename")
        #expect(context.scratch[UploadEndpointOptions.key] == nil)
        #expect(head.uri == client.uri, "nothing was re-aimed")
    }

    /// The name is read from the client's head, whatever an earlier filter did to the upstream one.
    @Test func theNameComesFromTheClientsHead() throws {
        let loop = EmbeddedEventLoop()
        let client = Self.put("/credgate/v1/files/original.pdf")
        let context = FilterTest.context(client, on: loop)
        var head = Self.put("/credgate/v1/files/rewritten.pdf")
        #expect(endpoint.decodeHead(&head, context: context).isProceed)
        #expect(context.scratch[UploadEndpointOptions.key]?.rawFilename == "original.pdf")
    }

    // MARK: - With the upload route's filters behind it

    private func chain() -> FilterChain {
        FilterChain([
            endpoint, StripClientCredentials(credentialHeaders: ["x-api-key"]),
            APIKeyFilter(header: "x-api-key", value: Secret("k")), UploadValidationFilter(limit: 1 << 20),
        ])
    }

    /// `curl -T license.pdf .../credgate/v1/files/license.pdf`: the platform gets a multipart upload of the bytes.
    @Test func withTheUploadRouteARawPDFIsSentAsMultipart() throws {
        let loop = EmbeddedEventLoop()
        let chain = chain()
        let client = Self.put("/credgate/v1/files/license.pdf")
        let context = FilterTest.context(client, on: loop)
        var head = client
        #expect(chain.runHead(from: 0, head: &head, context: context).0.isProceed)
        #expect(head.headers["x-api-key"] == ["k"])
        let stage = try #require(chain.bodyStage(for: head, context: context))
        var passed = FilterTest.bytes(try #require(stage.feed(ByteBuffer(bytes: FilterSamples.pdf)).passed))
        passed += FilterTest.bytes(try #require(stage.finish(head: &head).passed))
        #expect(head.method == .POST)
        #expect(head.uri == Self.uploadPath)
        #expect(head.headers.first(name: "content-type")?.hasPrefix("multipart/form-data; boundary=") == true)
        let text = String(decoding: passed, as: UTF8.self)
        #expect(text.contains("filename=\"license.pdf\""))
        #expect(passed.firstRange(of: FilterSamples.pdf) != nil)
    }

    @Test(arguments: [
        ("/credgate/v1/files/notes.txt", 415, "upload-unsupported-type"),
        ("/credgate/v1/files/a%2Fb.pdf", 422, "upload-invalid-filename"),
        ("/credgate/v1/files/%2E%2E", 422, "upload-invalid-filename"),
        ("/credgate/v1/files/x%0A.pdf", 422, "upload-invalid-filename"),
    ])
    func withTheUploadRouteABadNameIsRefusedAtTheHead(uri: String, status: Int, code: String) {
        let loop = EmbeddedEventLoop()
        let client = Self.put(uri)
        var head = client
        let (result, index) = chain().runHead(from: 0, head: &head, context: FilterTest.context(client, on: loop))
        FilterTest.expectProblem(result.stopResponse, status: status, code: code)
        #expect(index == 3, "refused by the upload filter")
    }

    @Test func withTheUploadRouteAnEmptyBodyIsRefused() {
        let loop = EmbeddedEventLoop()
        let client = Self.put("/credgate/v1/files/license.pdf", length: 0)
        var head = client
        let (result, _) = chain().runHead(from: 0, head: &head, context: FilterTest.context(client, on: loop))
        FilterTest.expectProblem(result.stopResponse, status: 422, code: "upload-empty-file")
    }
}
