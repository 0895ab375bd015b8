import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import Testing

@testable import CredGate

/// ``WriftAIUploadEndpoint`` and its pieces with no socket: the head becomes the flow's first platform call, the
/// stage checks the first bytes and hands over the first call's JSON, the platform's answers are read, and the
/// `endpoints.wriftai_upload` keys are parsed with a YAML path on every problem.
@Suite struct WriftAIUploadEndpointTests {
    static func endpoint(_ flow: WriftAIUploadConfig.Flow = .threeStep) -> WriftAIUploadEndpoint {
        WriftAIUploadEndpoint(
            config: WriftAIUploadConfig(flow: flow), spool: WriftAIUploadEndpoint.resolved(SpoolConfig()), complete: nil
        )
    }

    static func put(_ name: String, _ headers: HTTPHeaders = ["content-length": "20"]) -> HTTPRequestHead {
        FilterTest.head(.PUT, WriftAIUploadEndpoint.prefix + name, headers)
    }

    @Test func headBecomesTheFirstPlatformCall() throws {
        let loop = EmbeddedEventLoop()
        let client = Self.put(
            "my%20report.pdf",
            ["content-length": "20", "content-type": "application/octet-stream", "expect": "100-continue"])
        let context = FilterTest.context(client, on: loop)
        var head = client
        guard case .proceed = Self.endpoint().decodeHead(&head, context: context) else {
            Issue.record("the head was refused")
            return
        }
        #expect(head.method == .POST)
        #expect(head.uri == "/v1/uploads")
        #expect(head.headers.first(name: "content-type") == "application/json")
        #expect(!head.headers.contains(name: "content-length"))
        let stage = try #require(context.scratch[WriftAIUploadEndpoint.stageKey])
        #expect(stage.filename == "my report.pdf")
        #expect(stage.mimeType == "application/pdf")
        #expect(Self.endpoint().bodyStage(for: head, context: context) === stage)
    }

    @Test func emptyAndUnusableNamesAreRefusedAtTheHead() {
        let loop = EmbeddedEventLoop()
        for (name, headers, code) in [
            ("a.txt", ["content-length": "0"], "upload-empty-file"),
            ("a%2Fb.txt", ["content-length": "3"], "upload-invalid-filename"),
            ("%ZZ.txt", ["content-length": "3"], "upload-invalid-filename"),
        ] as [(String, HTTPHeaders, String)] {
            var head = Self.put(name, headers)
            guard
                case .stop(let response) = Self.endpoint().decodeHead(
                    &head, context: FilterTest.context(head, on: loop))
            else {
                Issue.record("\(name) was not refused")
                continue
            }
            FilterTest.expectProblem(response, status: 422, code: code)
        }
    }

    @Test func stageRefusesAPNGNamedPDFAtTheFirstBytes() {
        let loop = EmbeddedEventLoop()
        let stage = WriftAIUploadStage(
            filename: "scan.pdf", mimeType: "application/pdf", flow: .threeStep,
            spool: WriftAIUploadEndpoint.resolved(SpoolConfig()), eventLoop: loop)
        // The PNG signature split over two chunks.
        guard case .pass(let none) = stage.feed(ByteBuffer(bytes: [0x89, 0x50, 0x4E])) else {
            Issue.record("refused before the type could be told")
            return
        }
        #expect(none.isEmpty, "the file itself is never handed to the transport")
        guard case .respond(let error) = stage.feed(ByteBuffer(bytes: [0x47, 0x0D, 0x0A, 0x1A, 0x0A, 1, 2, 3])) else {
            Issue.record("a PNG named .pdf passed")
            return
        }
        #expect(error.code == "upload-content-mismatch")
        #expect(error.status.code == 415)
        #expect(error.detail.contains("a PNG image"))
    }

    @Test func stageHandsOverTheFirstCallsBody() throws {
        let loop = EmbeddedEventLoop()
        for flow in WriftAIUploadConfig.Flow.allCases {
            let stage = WriftAIUploadStage(
                filename: "notes.txt", mimeType: "text/plain", flow: flow,
                spool: WriftAIUploadEndpoint.resolved(SpoolConfig()), eventLoop: loop)
            _ = stage.feed(ByteBuffer(string: "hello "))
            _ = stage.feed(ByteBuffer(string: "world"))
            var head = FilterTest.head(.POST, flow.defaultPath)
            guard case .pass(let parts) = stage.finish(head: &head) else {
                Issue.record("finish refused")
                continue
            }
            let json = try #require(FilterTest.json(ByteBuffer(bytes: FilterTest.bytes(parts))))
            #expect(json["size"] as? Int == 11)
            #expect(json["mime_type"] as? String == "text/plain")
            if flow == .oneStep {
                #expect(json["name"] as? String == "notes.txt")
                #expect(json["resource"] as? String == "prediction")
            }
            #expect(head.headers.first(name: "content-type") == "application/json")
            stage.close()
        }
    }

    @Test func stageRefusesAnEmptyChunkedBody() {
        let stage = WriftAIUploadStage(
            filename: "empty.csv", mimeType: "text/csv", flow: .threeStep,
            spool: WriftAIUploadEndpoint.resolved(SpoolConfig()), eventLoop: EmbeddedEventLoop())
        var head = FilterTest.head(.POST, "/v1/uploads")
        guard case .respond(let error) = stage.finish(head: &head) else {
            Issue.record("an empty file passed")
            return
        }
        #expect(error.code == "upload-empty-file")
    }

    @Test func platformAnswersAreRead() {
        let parts = WriftAIUploadStart.parse(
            ByteBuffer(string: #"{"id":"u1","urls":["https://s/1","https://s/2"],"part_size":5}"#), flow: .threeStep)
        #expect(parts == .parts(id: "u1", urls: ["https://s/1", "https://s/2"], partSize: 5))
        #expect(
            WriftAIUploadStart.parse(ByteBuffer(string: #"{"id":"u1","urls":[],"part_size":5}"#), flow: .threeStep)
                == nil)
        #expect(
            WriftAIUploadStart.parse(ByteBuffer(string: #"{"id":"u1","urls":["x"],"part_size":0}"#), flow: .threeStep)
                == nil)
        #expect(WriftAIUploadStart.parse(ByteBuffer(string: "not json"), flow: .threeStep) == nil)
        let single = WriftAIUploadStart.parse(
            ByteBuffer(string: #"{"upload_url":"https://s/u","download_url":"https://s/d"}"#), flow: .oneStep)
        #expect(single == .single(uploadURL: "https://s/u", downloadURL: "https://s/d"))
        #expect(WriftAIUploadStart.completeBody(etags: ["\"a\"", "\"b\""]) == #"{"etags":["\"a\"","\"b\""]}"#)
        #expect(
            WriftAIUploadStart.downloadURL(inCompleteAnswer: Array(#"{"download_url":"https://s/d?sig=1"}"#.utf8))
                == "https://s/d?sig=1")
        let created = WriftAIUploadStart.createdAnswer(
            downloadURL: "https://s/d", id: nil, size: 3, mimeType: "text/plain")
        #expect(created.status == .created)
        #expect(
            FilterTest.text(created) == #"{"download_url":"https://s/d","id":null,"size":3,"mime_type":"text/plain"}"#)
    }

    @Test func mimeTypeComesFromTheExtension() {
        #expect(WriftAIMediaType.of(filename: "Report.PDF") == "application/pdf")
        #expect(WriftAIMediaType.of(filename: "clip.mp4") == "video/mp4")
        #expect(WriftAIMediaType.of(filename: "README") == "application/octet-stream")
        #expect(WriftAIMediaType.of(filename: "weights.unknownext") == "application/octet-stream")
    }

    @Test func uploadIncompleteNamesTheUploadAndTheParts() throws {
        let failure = UploadIncomplete(
            uploadID: "upl_9", failedParts: [2, 5], partCount: 6, reason: "a part could not be sent.")
        let response = LocalResponse.problem(.uploadIncomplete(failure), requestID: FilterTest.requestID)
        let members = FilterTest.expectProblem(response, status: 502, code: "upload-incomplete")
        #expect(members["upload_id"] as? String == "upl_9")
        #expect(members["failed_parts"] as? [Int] == [2, 5])
        #expect(members["part_count"] as? Int == 6)
        #expect((members["detail"] as? String)?.contains("Parts 2, 5 of 6 failed") == true)
    }

    // MARK: - endpoints.wriftai_upload

    static let yaml = """
        upstreams:
          wriftai:
            url: http://127.0.0.1:9
        credentials:
          token:
            kind: api_key
            header: Authorization
            value: Bearer x
        routes:
          - name: api
            path: /v1/**
            upstream: wriftai
            credentials: [token]
        endpoints:

        """

    @Test func configKeysAreRead() throws {
        let config = try ConfigLoader.parse(
            yaml: Self.yaml + """
                  wriftai_upload:
                    flow: one_step
                    part_concurrency: 8
                    part_retries: 0
                """, environment: [:], readFile: { _ in "" })
        let upload = try #require(config.endpoints.wriftaiUpload)
        #expect(upload.flow == .oneStep)
        #expect(upload.path == "/v1/files/urls", "one_step's default path")
        #expect(upload.partConcurrency == 8)
        #expect(upload.partRetries == 0)
        let defaults = try ConfigLoader.parse(
            yaml: Self.yaml + "  wriftai_upload: {}\n", environment: [:], readFile: { _ in "" })
        #expect(defaults.endpoints.wriftaiUpload == WriftAIUploadConfig())
        let absent = try ConfigLoader.parse(
            yaml: Self.yaml + "  upload_path: /v1/files\n", environment: [:], readFile: { _ in "" })
        #expect(absent.endpoints.wriftaiUpload == nil)
    }

    @Test func configProblemsNameTheirPath() {
        do {
            _ = try ConfigLoader.parse(
                yaml: Self.yaml + """
                      wriftai_upload:
                        flow: two_step
                        path: /v1/uploads/{id}
                        part_concurrency: 0
                        parts: 3
                    """, environment: [:], readFile: { _ in "" })
            Issue.record("accepted")
        } catch {
            let paths = Set(error.issues.map(\.path))
            #expect(paths.contains("endpoints.wriftai_upload.flow"), "\(error.issues)")
            #expect(paths.contains("endpoints.wriftai_upload.path"), "\(error.issues)")
            #expect(paths.contains("endpoints.wriftai_upload.part_concurrency"), "\(error.issues)")
            #expect(paths.contains("endpoints.wriftai_upload.parts"), "unknown key: \(error.issues)")
        }
    }
}
