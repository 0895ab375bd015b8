import Foundation
import Logging
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import CredGate

/// The platform's provider-documents call as the follow-up sees it: records each call, answers from a script.
private actor AttachPlatform: SessionTransport {
    enum Answer: Sendable {
        case answer(status: Int, body: String)
        case fail(any Error & Sendable)
    }

    struct Call: Sendable {
        var method: String
        var path: String
        var headers: [(String, String)]
        var body: String

        func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name.lowercased() }?.1 }
    }

    private var script: [Answer]
    private(set) var calls: [Call] = []

    init(_ script: [Answer]) { self.script = script }

    func send(method: String, path: String, headers: [(String, String)], body: String) async throws
        -> (status: Int, headers: [(String, String)], body: [UInt8])
    {
        calls.append(Call(method: method, path: path, headers: headers, body: body))
        switch script.isEmpty ? .answer(status: 500, body: "unscripted") : script.removeFirst() {
        case .answer(let status, let body): return (status, [("content-type", "application/json")], Array(body.utf8))
        case .fail(let error): throw error
        }
    }
}

private struct OddLibraryError: Error, CustomStringConvertible {
    var description: String { "secret-bearing library text: x-api-key=k-attach" }
}

/// Stands in for a route filter that answers the follow-up call itself.
private struct RefusingFilter: HeadFilter {
    func decodeHead(_ head: inout HTTPRequestHead, context: FilterContext) -> FilterHeadResult {
        .problem(.sessionUnavailable(reason: "login circuit open", retryAfterSeconds: 30), context)
    }
}

/// ``ProviderDocumentAttachEndpoint``: in front of the upload route, it asks the upload filter to keep the form's
/// document fields; on the platform's 2xx upload answer it attaches the file with a ``FollowUpCall`` (here over a
/// scripted ``SessionTransport``) and answers with the attach call's result, or with `attach-failed` carrying what
/// the client needs to finish alone.
@Suite struct ProviderDocumentAttachEndpointTests {
    static let uploadPath = "/api/v1/files/handle/"
    static let documentsPath = "/api/v1/users/provider-documents/"
    static let fileURL = "s3://assured-bucket/uploads/1b4e.pdf"
    static let uploadAnswer = #"{"id":"file-1","name":"1b4e.pdf","file_url":"\#(fileURL)"}"#
    static let fields = [
        ("provider", "prov-1"), ("document_name", "Board license"), ("document_type", "license"),
        ("name", "license.pdf"), ("expiration_date", "2027-01-31"),
    ]

    /// The provider-documents route the follow-up goes through: stripping, then the API key.
    private static func documentsRoute(_ extra: [any RequestFilter] = []) -> CompiledRoute {
        let filters: [any RequestFilter] =
            [
                StripClientCredentials(credentialHeaders: ["x-api-key"]),
                APIKeyFilter(header: "x-api-key", value: Secret("k-attach")),
            ] + extra
        return CompiledRoute(
            name: "provider-documents", target: nil, chain: FilterChain(filters), maxBodyBytes: 1 << 20,
            replayMaxBodyBytes: 1 << 20)
    }

    private static func endpoint(_ transport: any SessionTransport, route: CompiledRoute = documentsRoute())
        -> ProviderDocumentAttachEndpoint
    {
        ProviderDocumentAttachEndpoint(
            uploadPath: uploadPath, providerDocumentsPath: documentsPath,
            attach: FollowUpCall(route: route, transport: transport))
    }

    /// A request through the endpoint and the upload filter, its form checked whole: what the transport has done
    /// by the time the platform answers the upload.
    private static func uploaded(
        _ endpoint: ProviderDocumentAttachEndpoint, on loop: any EventLoop,
        fields: [(String, String)] = fields
    ) throws -> FilterContext {
        let body = FilterSamples.form(fields: fields)
        let client = FilterTest.head(
            .POST, ProviderDocumentAttachEndpoint.path,
            [
                "host": "gw", "content-type": FilterSamples.writer.contentType, "content-length": "\(body.count)",
            ])
        let context = FilterTest.context(client, on: loop)
        var head = client
        let chain = FilterChain([endpoint, UploadValidationFilter(limit: 1 << 20)])
        #expect(chain.runHead(from: 0, head: &head, context: context).0.isProceed)
        let stage = try #require(chain.bodyStage(for: head, context: context))
        #expect(stage.feed(ByteBuffer(bytes: body)).refusal == nil)
        #expect(stage.finish(head: &head).refusal == nil)
        return context
    }

    /// The platform's answer to the upload reaching the endpoint.
    private static func respond(
        _ endpoint: ProviderDocumentAttachEndpoint, _ context: FilterContext,
        status: HTTPResponseStatus = .created, body: String = uploadAnswer
    )
        -> (ResponseFilterResult, HTTPResponseHead, ByteBuffer)
    {
        var head = FilterTest.responseHead(status, ["content-type": "application/json"])
        var buffer = ByteBuffer(string: body)
        let result = endpoint.encodeResponse(&head, body: &buffer, context: context)
        return (result, head, buffer)
    }

    // MARK: - Before the platform answers

    @Test func theRequestBecomesTheUploadAndKeepsTheDocumentFields() throws {
        let loop = EmbeddedEventLoop()
        let endpoint = Self.endpoint(AttachPlatform([]))
        let client = FilterTest.head(
            .POST, ProviderDocumentAttachEndpoint.path + "?x=1", ["content-type": "multipart/form-data; boundary=b"])
        let context = FilterTest.context(client, on: loop)
        var head = client
        #expect(endpoint.decodeHead(&head, context: context).isProceed)
        #expect(head.method == .POST)
        #expect(head.uri == Self.uploadPath)
        #expect(head.headers["content-type"] == ["multipart/form-data; boundary=b"])
        let options = try #require(context.scratch[UploadEndpointOptions.key])
        #expect(options.captureFields)
        #expect(options.requiredFields == ["provider", "document_name", "document_type"])
        #expect(options.rawFilename == nil)
    }

    /// Only a 2xx upload answer is held (to read its `file_url`); others stream through.
    @Test func onlyASuccessfulUploadAnswerIsHeld() {
        let loop = EmbeddedEventLoop()
        let endpoint = Self.endpoint(AttachPlatform([]))
        let context = FilterTest.context(FilterTest.head(.POST, ProviderDocumentAttachEndpoint.path), on: loop)
        for status in [HTTPResponseStatus.ok, .created, .accepted] {
            #expect(endpoint.responseBufferLimit(for: FilterTest.responseHead(status), context: context) == 1 << 20)
        }
        for status in [
            HTTPResponseStatus.found, .badRequest, .unauthorized, .payloadTooLarge, .internalServerError, .badGateway,
        ] {
            #expect(endpoint.responseBufferLimit(for: FilterTest.responseHead(status), context: context) == nil)
        }
    }

    /// A failed upload is the platform's answer, passed on unchanged, and nothing is attached.
    @Test(arguments: [HTTPResponseStatus.badRequest, .unauthorized, .internalServerError])
    func aFailedUploadPassesThrough(status: HTTPResponseStatus) async throws {
        let platform = AttachPlatform([])
        let endpoint = Self.endpoint(platform)
        try Self.syncEmbedded { loop in
            let context = try Self.uploaded(endpoint, on: loop)
            let (result, head, body) = Self.respond(endpoint, context, status: status, body: #"{"detail": "nope"}"#)
            #expect(result.isProceed)
            #expect(head.status == status)
            #expect(FilterTest.text(body) == #"{"detail": "nope"}"#)
        }
        #expect(await platform.calls.isEmpty)
    }

    /// Without the upload stage (the upload filter is not on the route), there is nothing to attach with.
    @Test func withoutTheUploadStageTheAnswerPasses() {
        let loop = EmbeddedEventLoop()
        let endpoint = Self.endpoint(AttachPlatform([]))
        let context = FilterTest.context(FilterTest.head(.POST, ProviderDocumentAttachEndpoint.path), on: loop)
        let (result, _, body) = Self.respond(endpoint, context)
        #expect(result.isProceed)
        #expect(FilterTest.text(body) == Self.uploadAnswer)
    }

    /// The platform stored the upload but named no `file_url`: `attach-failed` (502) with the upload's record, and
    /// no attach call.
    @Test(arguments: [
        (#"{"id":"file-1"}"#, true), (#"{"id":"file-1","file_url":""}"#, true), (#"{"file_url":5}"#, true),
        ("stored, but not JSON", false), (#"["s3://assured-bucket/a.pdf"]"#, true),
    ])
    func anUploadAnswerWithoutAFileURLIsAttachFailed(answer: String, isJSON: Bool) async throws {
        let platform = AttachPlatform([])
        let endpoint = Self.endpoint(platform)
        try Self.syncEmbedded { loop in
            let context = try Self.uploaded(endpoint, on: loop)
            let (result, _, _) = Self.respond(endpoint, context, status: .created, body: answer)
            let response = try #require(result.replacement)
            let members = FilterTest.expectProblem(response, status: 502, code: "attach-failed")
            #expect((members["detail"] as? String)?.contains("status 201") == true)
            if isJSON {
                let file = try #require(members["file"])
                // Sorted keys: two dictionaries with the same members may iterate in different orders.
                let reencoded = try JSONSerialization.data(
                    withJSONObject: file, options: [.fragmentsAllowed, .sortedKeys])
                let original = try JSONSerialization.jsonObject(with: Data(answer.utf8), options: [.fragmentsAllowed])
                #expect(
                    reencoded
                        == (try JSONSerialization.data(
                            withJSONObject: original, options: [.fragmentsAllowed, .sortedKeys])))
            } else {
                #expect(members["file"] as? String == answer)
            }
            #expect(members["file_url"] == nil)
            #expect(members["retry"] == nil)
        }
        #expect(await platform.calls.isEmpty)
    }

    // MARK: - The follow-up call

    /// With a `file_url`, the endpoint attaches the file through the provider-documents route (its filters put
    /// the key on) and answers, later, with the platform's document.
    @Test func theFileIsAttachedAndTheDocumentReturned() async throws {
        let document = #"{"id":"doc-9","provider":"prov-1","document_url":"\#(Self.fileURL)"}"#
        let platform = AttachPlatform([.answer(status: 201, body: document)])
        let endpoint = Self.endpoint(platform)
        let loop = NIOAsyncTestingEventLoop()
        let context = try Self.uploaded(endpoint, on: loop)
        let (result, _, _) = Self.respond(endpoint, context)
        let later = try #require(result.later)
        let response = try await FilterTest.settle(later, on: loop)

        #expect(response.status == .created)
        #expect(response.headers["content-type"] == ["application/json"])
        #expect(response.headers["x-credgate-file-url"] == [Self.fileURL])
        #expect(FilterTest.text(response) == document)

        let calls = await platform.calls
        #expect(calls.count == 1)
        let call = try #require(calls.first)
        #expect(call.method == "POST")
        #expect(call.path == Self.documentsPath)
        #expect(call.header("x-api-key") == "k-attach")
        #expect(call.header("x-request-id") == FilterTest.requestID)
        #expect(call.header("content-type") == "application/json")
        // Every text field of the form but `name`, and the uploaded file's URL; keys sorted.
        #expect(
            call.body
                == #"{"document_name":"Board license","document_type":"license","document_url":"\#(Self.fileURL)","expiration_date":"2027-01-31","provider":"prov-1"}"#
        )
    }

    /// The platform refused to attach: its 4xx (the client's fields are at fault) as `attach-failed`, with the
    /// stored file and the exact call to retry.
    @Test(arguments: [(400, 400), (404, 404), (500, 502), (503, 502)])
    func aRefusedAttachKeepsTheFileAndTheRetry(platformStatus: Int, status: Int) async throws {
        let refusal = #"{"provider":["Invalid pk \"prov-1\" - object does not exist."]}"#
        let platform = AttachPlatform([.answer(status: platformStatus, body: refusal)])
        let endpoint = Self.endpoint(platform)
        let loop = NIOAsyncTestingEventLoop()
        let context = try Self.uploaded(endpoint, on: loop)
        let later = try #require(Self.respond(endpoint, context).0.later)
        let response = try await FilterTest.settle(later, on: loop)

        let members = FilterTest.expectProblem(response, status: status, code: "attach-failed")
        #expect(members["file_url"] as? String == Self.fileURL)
        #expect(members["platform_status"] as? Int == platformStatus)
        #expect((members["platform_answer"] as? [String: Any])?["provider"] != nil)
        #expect((members["file"] as? [String: Any])?["id"] as? String == "file-1")
        let retry = try #require(members["retry"] as? [String: Any])
        #expect(retry["method"] as? String == "POST")
        let retryBody = try #require(retry["body"] as? [String: String])
        #expect(
            retryBody == [
                "provider": "prov-1", "document_name": "Board license", "document_type": "license",
                "expiration_date": "2027-01-31", "document_url": Self.fileURL,
            ])
        #expect((members["detail"] as? String)?.contains("POST \(Self.documentsPath)") == true)
    }

    /// No answer to the attach call: 502 `attach-failed` whose reason is a fixed sentence (the transport's own),
    /// or only the error's type name, never a library's text.
    @Test func anUnreachablePlatformIsAttachFailed() async throws {
        let cases: [(any Error & Sendable, String)] = [
            (SessionTransportError("connection refused"), "connection refused"), (OddLibraryError(), "OddLibraryError"),
        ]
        for (error, reason) in cases {
            let platform = AttachPlatform([.fail(error)])
            let endpoint = Self.endpoint(platform)
            let loop = NIOAsyncTestingEventLoop()
            let context = try Self.uploaded(endpoint, on: loop)
            let later = try #require(Self.respond(endpoint, context).0.later)
            let response = try await FilterTest.settle(later, on: loop)
            let members = FilterTest.expectProblem(response, status: 502, code: "attach-failed")
            let detail = try #require(members["detail"] as? String)
            #expect(detail.contains("could not reach the platform to attach it (\(reason))"))
            #expect(!FilterTest.text(response).contains("k-attach"))
            #expect(members["file_url"] as? String == Self.fileURL)
            #expect(members["retry"] != nil)
            #expect(members["platform_status"] == nil)
        }
    }

    /// The provider-documents route's own filters answered the follow-up locally (here: the session is down).
    @Test func theRoutesFiltersMayRefuseTheFollowUp() async throws {
        let platform = AttachPlatform([])
        let endpoint = Self.endpoint(platform, route: Self.documentsRoute([RefusingFilter()]))
        let loop = NIOAsyncTestingEventLoop()
        let context = try Self.uploaded(endpoint, on: loop)
        let later = try #require(Self.respond(endpoint, context).0.later)
        let response = try await FilterTest.settle(later, on: loop)
        let members = FilterTest.expectProblem(response, status: 502, code: "attach-failed")
        #expect(
            (members["detail"] as? String)?.contains(
                "answered the follow-up call locally with 503 (session-unavailable)") == true)
        #expect(await platform.calls.isEmpty)
    }

    /// A 401 to the attach call is replayed once, with a new session token, as on the data path.
    @Test func aRejectedSessionTokenIsReplacedAndTheAttachReplayed() async throws {
        let sessions = FakePlatform()
        var quiet = Logger(label: "test.attach")
        quiet.logLevel = .critical
        let config = assuredSessionConfig()
        let session = manualSession(
            sessions, clock: ManualClock(), config: config, logger: quiet, name: "assured_session")
        let first = try await session.validToken()
        let route = Self.documentsRoute([JWTSessionFilter(name: "assured_session", session: session, config: config)])
        let platform = AttachPlatform([
            .answer(status: 401, body: #"{"detail":"Token is invalid or expired"}"#),
            .answer(status: 201, body: #"{"id":"doc-1"}"#),
        ])
        let endpoint = Self.endpoint(platform, route: route)
        let loop = NIOAsyncTestingEventLoop()
        let context = try Self.uploaded(endpoint, on: loop)
        let later = try #require(Self.respond(endpoint, context).0.later)
        let response = try await FilterTest.settle(later, on: loop)
        #expect(response.status == .created)

        let calls = await platform.calls
        #expect(calls.count == 2)
        let second = try #require(session.currentToken())
        #expect(second.generation == first.generation + 1)
        #expect(calls.first?.header("authorization") == "Bearer \(first.value.reveal())")
        #expect(calls.last?.header("authorization") == "Bearer \(second.value.reveal())")
        #expect(calls.first?.body == calls.last?.body)
        await session.shutdown()
    }

    /// Runs `body` with an `EmbeddedEventLoop` made, used and released on one thread (an async test may resume
    /// on another thread after an `await`, which the embedded loop does not allow).
    private static func syncEmbedded(_ body: (EmbeddedEventLoop) throws -> Void) throws {
        let loop = EmbeddedEventLoop()
        try body(loop)
        loop.run()
    }
}
