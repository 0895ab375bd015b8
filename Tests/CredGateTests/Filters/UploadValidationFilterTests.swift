import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import CredGate

/// ``UploadValidationFilter``: refuses what the head already shows, then checks the body as a stage while it
/// streams (nothing is forwarded unless all of it is good), and leaves the stage in the scratch for the
/// upload-and-attach endpoint.
@Suite struct UploadValidationFilterTests {
    static let limit = 4096
    let filter = UploadValidationFilter(limit: UploadValidationFilterTests.limit)

    private static func uploadHead(contentType: String? = FilterSamples.writer.contentType, length: Int?)
        -> HTTPRequestHead
    {
        var headers: HTTPHeaders = ["host": "gw"]
        if let contentType { headers.add(name: "content-type", value: contentType) }
        if let length { headers.add(name: "content-length", value: String(length)) }
        return FilterTest.head(.POST, "/api/v1/files/handle/", headers)
    }

    /// What the transport does with a stage: feed the body in chunks, keep what passes, then finish.
    private struct Run {
        var passed: [UInt8] = []
        var refusal: GatewayError?
        var head: HTTPRequestHead
    }

    private func stream(_ body: [UInt8], through stage: any RequestBodyStage, head: HTTPRequestHead, chunk: Int = 13)
        -> Run
    {
        var run = Run(head: head)
        var offset = 0
        while offset < body.count {
            let end = min(offset + chunk, body.count)
            let result = stage.feed(ByteBuffer(bytes: body[offset..<end]))
            if let refusal = result.refusal {
                run.refusal = refusal
                return run
            }
            run.passed += FilterTest.bytes(result.passed ?? [])
            offset = end
        }
        let result = stage.finish(head: &run.head)
        if let refusal = result.refusal {
            run.refusal = refusal
            return run
        }
        run.passed += FilterTest.bytes(result.passed ?? [])
        return run
    }

    /// Runs the head filter; returns the stage the transport would get.
    private func start(_ head: HTTPRequestHead, _ context: FilterContext) throws -> any RequestBodyStage {
        var upstream = head
        let result = filter.decodeHead(&upstream, context: context)
        #expect(result.isProceed)
        return try #require(filter.bodyStage(for: upstream, context: context))
    }

    // MARK: - The head

    @Test(
        arguments: [
            (nil, 100, 415, "upload-not-multipart"),
            ("application/json", 100, 415, "upload-not-multipart"),
            ("application/octet-stream", nil, 415, "upload-not-multipart"),
            ("multipart/form-data", 100, 400, "upload-missing-boundary"),
            (
                "multipart/form-data; boundary=\"\(String(repeating: "b", count: 71))\"", 100, 400,
                "upload-invalid-boundary"
            ),
            (FilterSamples.writer.contentType, limit + 1, 413, "upload-too-large"),
            (FilterSamples.writer.contentType, 0, 422, "upload-missing-file"),
        ] as [(String?, Int?, Int, String)])
    func theHeadAloneCanRefuse(contentType: String?, length: Int?, status: Int, code: String) {
        let loop = EmbeddedEventLoop()
        let client = Self.uploadHead(contentType: contentType, length: length)
        let context = FilterTest.context(client, on: loop)
        var head = client
        let result = filter.decodeHead(&head, context: context)
        FilterTest.expectProblem(result.stopResponse, status: status, code: code)
        #expect(context.scratch[UploadValidationFilter.stageKey] == nil)
        #expect(filter.bodyStage(for: head, context: context) == nil)
    }

    // MARK: - The body stage

    /// A valid PDF upload passes whole, byte for byte (the client named it and typed it, so nothing is rewritten).
    @Test(arguments: [1, 13, 64, 100_000])
    func aValidPDFUploadIsAccepted(chunk: Int) throws {
        let loop = EmbeddedEventLoop()
        let body = FilterSamples.form()
        let client = Self.uploadHead(length: body.count)
        let context = FilterTest.context(client, on: loop)
        let stage = try start(client, context)
        #expect(context.scratch[UploadValidationFilter.stageKey] === (stage as AnyObject))
        let run = stream(body, through: stage, head: client, chunk: chunk)
        #expect(run.refusal == nil)
        #expect(run.passed == body)
        #expect(
            run.head.headers["content-type"] == [FilterSamples.writer.contentType],
            "a multipart upload keeps its boundary")
        let plan = try #require(context.scratch[UploadValidationFilter.stageKey]?.plan)
        #expect(plan.fileType == .pdf)
        #expect(plan.filename == "license.pdf")
        #expect(plan.clientName == "license.pdf")
    }

    /// Without a `name` field, one is added before the file part and the file's bytes pass unchanged.
    @Test func aMissingNameIsGenerated() throws {
        let loop = EmbeddedEventLoop()
        let body = FilterSamples.form(fields: [], contentType: "application/octet-stream")
        let client = Self.uploadHead(length: body.count)
        let context = FilterTest.context(client, on: loop)
        let run = stream(body, through: try start(client, context), head: client)
        #expect(run.refusal == nil)
        let text = String(decoding: run.passed, as: UTF8.self)
        #expect(text.contains("name=\"name\""))
        #expect(text.contains("Content-Type: application/pdf"))
        #expect(run.passed.count > body.count)
        #expect(run.passed.firstRange(of: FilterSamples.pdf) != nil)
        let plan = try #require(context.scratch[UploadValidationFilter.stageKey]?.plan)
        #expect(plan.generatedName?.hasSuffix(".pdf") == true)
    }

    /// A PNG named `.pdf` is refused on its first bytes: nothing at all passes.
    @Test(arguments: [1, 13, 100_000])
    func aPNGNamedPDFIsRefused(chunk: Int) throws {
        let loop = EmbeddedEventLoop()
        let body = FilterSamples.form(file: FilterSamples.png)
        let client = Self.uploadHead(length: body.count)
        let context = FilterTest.context(client, on: loop)
        let run = stream(body, through: try start(client, context), head: client, chunk: chunk)
        let refusal = try #require(run.refusal)
        #expect(run.passed.isEmpty)
        let members = FilterTest.expectProblem(
            .problem(refusal, requestID: FilterTest.requestID), status: 415,
            code: "upload-content-mismatch")
        #expect(
            (members["detail"] as? String)?.contains("'license.pdf' is named as a PDF but its content is a PNG image")
                == true)
        #expect(context.scratch[UploadValidationFilter.stageKey]?.plan == nil)
    }

    @Test(
        arguments: [
            ("report.docx", "application/pdf", FilterSamples.pdf, 415, "upload-unsupported-type"),
            ("empty.pdf", "application/pdf", [], 422, "upload-empty-file"),
        ] as [(String, String, [UInt8], Int, String)])
    func otherFileProblemsAreRefused(filename: String, contentType: String, file: [UInt8], status: Int, code: String)
        throws
    {
        let loop = EmbeddedEventLoop()
        let body = FilterSamples.form(filename: filename, contentType: contentType, file: file)
        let client = Self.uploadHead(length: body.count)
        let run = stream(body, through: try start(client, FilterTest.context(client, on: loop)), head: client)
        let refusal = try #require(run.refusal)
        #expect(Int(refusal.status.code) == status)
        #expect(refusal.code == code)
        #expect(run.passed.isEmpty)
    }

    /// A body without a length (chunked) that goes over the route's limit is refused as it streams.
    @Test func aBodyOverTheLimitIsRefusedWhileStreaming() throws {
        let loop = EmbeddedEventLoop()
        let body = FilterSamples.form(file: FilterSamples.pdf + [UInt8](repeating: 0x20, count: Self.limit))
        var client = Self.uploadHead(length: nil)
        client.headers.add(name: "transfer-encoding", value: "chunked")
        let run = stream(
            body, through: try start(client, FilterTest.context(client, on: loop)), head: client, chunk: 512)
        #expect(run.refusal?.code == "upload-too-large")
        #expect(run.refusal?.status == .payloadTooLarge)
    }

    // MARK: - What the endpoints ask of it (the scratch)

    /// A raw upload (`PUT /credgate/v1/files/{name}`, the options set by ``RawUploadEndpoint``): the body is the
    /// file; it is checked against the name's extension and sent wrapped in the platform's multipart form.
    @Test func aRawUploadIsWrappedInMultipart() throws {
        let loop = EmbeddedEventLoop()
        let client = FilterTest.head(
            .POST, "/api/v1/files/handle/", ["host": "gw", "content-length": "\(FilterSamples.pdf.count)"])
        let context = FilterTest.context(client, on: loop)
        context.scratch[UploadEndpointOptions.key] = UploadEndpointOptions(rawFilename: "Board License.PDF")
        let stage = try start(client, context)
        let run = stream(FilterSamples.pdf, through: stage, head: client)
        #expect(run.refusal == nil)
        let contentType = try #require(run.head.headers.first(name: "content-type"))
        #expect(contentType.hasPrefix("multipart/form-data; boundary=credgate-"))
        let text = String(decoding: run.passed, as: UTF8.self)
        #expect(text.contains("filename=\"Board License.PDF\""))
        #expect(text.contains("Content-Type: application/pdf"))
        #expect(run.passed.firstRange(of: FilterSamples.pdf) != nil)
        let boundary = String(contentType.dropFirst("multipart/form-data; boundary=".count))
        #expect(text.hasSuffix("--\(boundary)--\r\n"))
        #expect(
            context.scratch[UploadValidationFilter.stageKey]?.plan?.bodyLengthDelta == run.passed.count
                - FilterSamples.pdf.count)
    }

    @Test func aRawUploadOfTheWrongTypeIsRefused() throws {
        let loop = EmbeddedEventLoop()
        let client = FilterTest.head(.POST, "/api/v1/files/handle/", ["content-length": "\(FilterSamples.png.count)"])
        let context = FilterTest.context(client, on: loop)
        context.scratch[UploadEndpointOptions.key] = UploadEndpointOptions(rawFilename: "scan.pdf")
        let run = stream(FilterSamples.png, through: try start(client, context), head: client)
        #expect(run.refusal?.code == "upload-content-mismatch")
        #expect(run.passed.isEmpty)

        // A name whose extension is not accepted is refused at the head.
        let other = FilterTest.context(client, on: loop)
        other.scratch[UploadEndpointOptions.key] = UploadEndpointOptions(rawFilename: "notes.txt")
        var head = client
        FilterTest.expectProblem(
            filter.decodeHead(&head, context: other).stopResponse, status: 415, code: "upload-unsupported-type")
    }

    /// Upload-and-attach sets options to keep the form's text fields and require its document fields; the stage,
    /// under ``UploadValidationFilter/stageKey``, is where that endpoint reads them once the platform answered.
    @Test func theAttachEndpointReadsTheCapturedFieldsFromTheScratch() throws {
        let loop = EmbeddedEventLoop()
        let fields = [
            ("provider", "prov-1"), ("document_name", "Board license"), ("document_type", "license"),
            ("name", "license.pdf"), ("expiration_date", "2027-01-31"),
        ]
        let body = FilterSamples.form(fields: fields)
        let client = Self.uploadHead(length: body.count)
        let context = FilterTest.context(client, on: loop)
        context.scratch[UploadEndpointOptions.key] = UploadEndpointOptions(
            captureFields: true, requiredFields: ProviderDocumentAttachEndpoint.requiredFields)
        let run = stream(body, through: try start(client, context), head: client)
        #expect(run.refusal == nil)
        let stage = try #require(context.scratch[UploadValidationFilter.stageKey])
        #expect(stage.textFields.map(\.name) == ["provider", "document_name", "document_type", "expiration_date"])
        #expect(stage.textFields.map(\.value) == ["prov-1", "Board license", "license", "2027-01-31"])
    }

    @Test(arguments: ["provider", "document_name", "document_type"])
    func aMissingDocumentFieldIsRefusedAtTheEnd(missing: String) throws {
        let loop = EmbeddedEventLoop()
        let fields = [("provider", "prov-1"), ("document_name", "Board license"), ("document_type", "license")]
            .map { $0.0 == missing ? ($0.0, "") : $0 }
        let body = FilterSamples.form(fields: fields)
        let client = Self.uploadHead(length: body.count)
        let context = FilterTest.context(client, on: loop)
        context.scratch[UploadEndpointOptions.key] = UploadEndpointOptions(
            captureFields: true, requiredFields: ProviderDocumentAttachEndpoint.requiredFields)
        let run = stream(body, through: try start(client, context), head: client)
        let refusal = try #require(run.refusal)
        #expect(refusal.code == "upload-invalid-field")
        #expect(refusal.status == .unprocessableEntity)
        #expect(refusal.detail.contains("The form has no '\(missing)' field"))
    }

    /// Without the endpoint's options, text fields are not kept.
    @Test func fieldsAreNotCapturedForAPlainUpload() throws {
        let loop = EmbeddedEventLoop()
        let body = FilterSamples.form(fields: [("provider", "prov-1")])
        let client = Self.uploadHead(length: body.count)
        let context = FilterTest.context(client, on: loop)
        let run = stream(body, through: try start(client, context), head: client)
        #expect(run.refusal == nil)
        #expect(context.scratch[UploadValidationFilter.stageKey]?.textFields.isEmpty == true)
    }

    /// In a chain, the stage is found by the transport through the chain.
    @Test func theChainHandsTheStageToTheTransport() throws {
        let loop = EmbeddedEventLoop()
        let chain = FilterChain([StripClientCredentials(credentialHeaders: []), filter])
        #expect(chain.hasBodyStage)
        let body = FilterSamples.form()
        let client = Self.uploadHead(length: body.count)
        let context = FilterTest.context(client, on: loop)
        var head = client
        #expect(chain.runHead(from: 0, head: &head, context: context).0.isProceed)
        let stage = try #require(chain.bodyStage(for: head, context: context))
        #expect(stream(body, through: stage, head: head).passed == body)
    }
}
