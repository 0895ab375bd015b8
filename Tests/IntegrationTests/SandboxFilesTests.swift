import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1
import Sandbox
import Testing

@testable import CredGate

/// The sandbox's files side: multipart upload into its in-memory bucket, presigned URLs (SigV4 and SigV2 query
/// forms) served and checked at `/sandbox-s3/`, provider documents' presigned links, the presign and
/// provider-document failure controls, and the transport byte counter. Real sockets on an ephemeral port.
@Suite("Sandbox files")
struct SandboxFilesTests {
    static let apiKey = "sandbox-files-test-key-77"
    static let bucket = "assured-sandbox-files"
    static let boundary = "----credgate-sandbox-files-7f3a"
    static let presignPath = "/api/v1/files/presign-s3-url/presign_s3_url/"
    static let uploadPath = "/api/v1/files/handle/"

    // MARK: Upload

    @Test func uploadStoresTheBytesAndAnswersAFileRecord() async throws {
        try await withFiles { sandbox, client, token in
            // Bytes full of CR LF, dashes and a near-miss of the boundary, so the parser's edge cases are crossed.
            let content = Self.awkwardBytes(count: 300_000)
            let body = Self.multipart([
                .field("name", "given name.pdf"),
                .file("file", filename: "Scan 1.pdf", contentType: "application/pdf", content),
            ])
            let response = try await client.files(
                .POST, sandbox.baseURL + Self.uploadPath, bearer: token,
                contentType: "multipart/form-data; boundary=\(Self.boundary)", body: body)
            #expect(response.status == .created, "\(response.text)")
            let record = try response.object()
            let id = try #require(record["id"] as? String)
            #expect(UUID(uuidString: id) != nil && id == id.lowercased())
            let key = "\(id)-given name.pdf"
            #expect(record["name"] as? String == "given name.pdf")
            #expect(record["file_url"] as? String == "s3://\(Self.bucket)/\(key)")
            #expect(record["uploaded_file_uri"] as? String == "s3://\(Self.bucket)/\(key)")
            #expect(record["file"] as? String == sandbox.baseURL + "/sandbox-s3/\(Self.bucket)/\(id)-given%20name.pdf")
            #expect((try? Date((record["created_at"] as? String) ?? "", strategy: .iso8601)) != nil)
            let metadata = try #require(record["storage_metadata"] as? [String: Any])
            #expect(metadata["bucket_name"] as? String == Self.bucket)
            #expect(metadata["region"] as? String == "us-east-2")
            #expect(metadata["signature_version"] as? String == "s3v4")
            #expect(metadata["content_type"] as? String == "application/pdf")
            #expect(metadata["file_size_bytes"] as? Int == content.count)
            #expect(metadata["original_filename"] as? String == "Scan 1.pdf")
            #expect(metadata["s3_uri"] as? String == "s3://\(Self.bucket)/\(key)")
            #expect(metadata["sha256"] as? String == Self.hex(SHA256.hash(data: content)))
            #expect(metadata["etag"] as? String == "\"\(Self.hex(Insecure.MD5.hash(data: content)))\"")

            #expect(await sandbox.storedObject(key: key) == content)
            #expect(await sandbox.storedObjectKeys() == [key])
            #expect(sandbox.bucket == Self.bucket)
            #expect(await sandbox.counters().route("POST", Self.uploadPath) == 1)
            let recorded = try #require(await sandbox.recorder.last())
            #expect(recorded.bodyBytes == body.count && recorded.bodySHA256 == Self.hex(SHA256.hash(data: body)))
        }
    }

    @Test func uploadWithoutANameGetsAUUIDWithTheOriginalExtensionAndKeepsTheContentTypeAsSent() async throws {
        try await withFiles { sandbox, client, token in
            let content = Array("\u{89}PNG\r\n\u{1a}\n fake".utf8)
            for (filename, type, ext) in [
                ("C:\\scans\\photo.PNG", "image/png; charset=binary", ".PNG"), ("README", nil, ""),
            ] {
                let body = Self.multipart([.file("file", filename: filename, contentType: type, content)])
                let response = try await client.files(
                    .POST, sandbox.baseURL + Self.uploadPath, bearer: token,
                    contentType: "multipart/form-data; boundary=\"\(Self.boundary)\"", body: body)
                #expect(response.status == .created, "\(response.text)")
                let record = try response.object()
                let name = try #require(record["name"] as? String)
                #expect(name.hasSuffix(ext) && UUID(uuidString: String(name.dropLast(ext.count))) != nil, "\(name)")
                let metadata = try #require(record["storage_metadata"] as? [String: Any])
                if let type {
                    #expect(metadata["content_type"] as? String == type)
                } else {
                    #expect(metadata["content_type"] is NSNull)
                }
                #expect(metadata["original_filename"] as? String == (filename == "README" ? "README" : "photo.PNG"))
                let key = "\(record["id"] as? String ?? "")-\(name)"
                #expect(await sandbox.storedObject(key: key) == content)
            }
        }
    }

    @Test func uploadsWithoutAUsableFileAre400AndStoreNothing() async throws {
        try await withFiles { sandbox, client, token in
            let url = sandbox.baseURL + Self.uploadPath
            let multipart = "multipart/form-data; boundary=\(Self.boundary)"
            let cases: [([Part], [String: [String]])] = [
                ([.field("name", "a.pdf")], ["file": ["No file was submitted."]]),
                (
                    [.field("file", "just text")],
                    ["file": ["The submitted data was not a file. Check the encoding type on the form."]]
                ),
                (
                    [.file("file", filename: "", contentType: "application/pdf", Array("x".utf8))],
                    ["file": ["No file was submitted."]]
                ),
                (
                    [.file("file", filename: "empty.pdf", contentType: "application/pdf", [])],
                    ["file": ["The submitted file is empty."]]
                ),
                (
                    [.field("name", " "), .file("file", filename: "a.pdf", contentType: nil, Array("x".utf8))],
                    ["name": ["This field may not be blank."]]
                ),
            ]
            for (parts, expected) in cases {
                let response = try await client.files(
                    .POST, url, bearer: token, contentType: multipart, body: Self.multipart(parts))
                #expect(response.status == .badRequest, "\(response.text)")
                #expect(try response.object() as? [String: [String]] == expected)
            }
            // No boundary, a body that ends inside its part, and a broken part header: DRF's parse error.
            let noBoundary = try await client.files(
                .POST, url, bearer: token, contentType: "multipart/form-data",
                body: Self.multipart([.field("name", "a")]))
            #expect(noBoundary.status == .badRequest)
            #expect((try noBoundary.object()["detail"] as? String)?.hasPrefix("Multipart form parse error") == true)
            let whole = Self.multipart([
                .file("file", filename: "a.pdf", contentType: nil, Array(repeating: 0x41, count: 1000))
            ])
            let truncated = try await client.files(
                .POST, url, bearer: token, contentType: multipart, body: Array(whole.prefix(600)))
            #expect(truncated.status == .badRequest)
            #expect((try truncated.object()["detail"] as? String)?.hasPrefix("Multipart form parse error") == true)
            let broken = Array("--\(Self.boundary)\r\nBad Header Name: x\r\n\r\nabc\r\n--\(Self.boundary)--\r\n".utf8)
            #expect(
                try await client.files(.POST, url, bearer: token, contentType: multipart, body: broken).status
                    == .badRequest)

            #expect(await sandbox.storedObjectKeys().isEmpty)
            // The route still needs the JWT.
            let anonymous = try await client.files(.POST, url, contentType: multipart, body: whole)
            #expect(anonymous.status == .unauthorized)
        }
    }

    @Test func aLargeUploadIsStoredWholeAndServedBack() async throws {
        try await withFiles { sandbox, client, token in
            var state: UInt64 = 7
            let content = SandboxTests.SeededChunks.bytes(state: &state, count: 24 * 1024 * 1024 + 13)
            let fileURL = try await Self.upload(client, sandbox, token, name: "big.pdf", content: content)
            let key = String(fileURL.dropFirst("s3://\(Self.bucket)/".count))
            #expect(await sandbox.storedObject(key: key)?.count == content.count)
            let fetched = try await client.files(.GET, try await client.presign(sandbox, token, fileURL), key: nil)
            #expect(fetched.status == .ok)
            #expect(fetched.body.count == content.count)
            #expect(Self.hex(SHA256.hash(data: fetched.body)) == Self.hex(SHA256.hash(data: content)))
        }
    }

    // MARK: Presign and the signed object route

    @Test func presignAnswersASigV4URLThatServesTheStoredBytes() async throws {
        try await withFiles { sandbox, client, token in
            let content = Self.awkwardBytes(count: 70_000)
            let fileURL = try await Self.upload(client, sandbox, token, name: "license 1.pdf", content: content)
            let before = Date()
            let presigned = try await client.presign(sandbox, token, fileURL)
            let key = String(fileURL.dropFirst("s3://\(Self.bucket)/".count))
            let prefix =
                sandbox.baseURL + "/sandbox-s3/\(Self.bucket)/" + key.replacingOccurrences(of: " ", with: "%20") + "?"
            #expect(presigned.hasPrefix(prefix), "\(presigned)")
            let query = String(presigned.dropFirst(prefix.count))
            let match = try #require(
                query.wholeMatch(
                    of:
                        #/X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIASANDBOXEXAMPLE42%2F(\d{8})%2Fus-east-2%2Fs3%2Faws4_request&X-Amz-Date=(\d{8})T(\d{6})Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=[0-9a-f]{64}/#
                ))
            #expect(match.output.1 == match.output.2)
            // The gateway's own reader of presigned URLs sees a SigV4 link signed now, for 3600 s.
            let expiry = try #require(PresignedURLExpiry(url: presigned))
            #expect(expiry.form == .sigV4)
            let signedAt = try #require(expiry.signedAt)
            #expect(abs(signedAt.timeIntervalSince(before)) < 3)
            #expect(expiry.expiresAt.timeIntervalSince(signedAt) == 3600)

            // No API key: the signature is the credential.
            let fetched = try await client.files(.GET, presigned, key: nil)
            #expect(fetched.status == .ok)
            #expect(fetched.body == content)
            #expect(fetched.headers.first(name: "content-type") == "application/pdf")
            #expect(fetched.headers.first(name: "content-length") == String(content.count))
            #expect(fetched.headers.first(name: "etag") == "\"\(Self.hex(Insecure.MD5.hash(data: content)))\"")
            #expect(fetched.headers.first(name: "last-modified")?.hasSuffix(" GMT") == true)
            let head = try await client.files(.HEAD, presigned, key: nil)
            #expect(head.status == .ok && head.body.isEmpty)
            #expect(head.headers.first(name: "content-length") == String(content.count))

            // The Swift accessor makes the same kind of URL.
            let direct = try #require(await sandbox.presignedURL(for: fileURL))
            #expect(try await client.files(.GET, direct, key: nil).body == content)
            #expect(await sandbox.presignedURL(for: "https://example.com/a.pdf") == nil)

            let counters = await sandbox.counters()
            #expect(counters.route("POST", Self.presignPath) == 1)
            #expect(counters.route("GET", "/sandbox-s3/{bucket}/{key}") == 2)
            #expect(counters.route("HEAD", "/sandbox-s3/{bucket}/{key}") == 1)
        }
    }

    @Test func presignValidatesItsBodyButNotTheObject() async throws {
        try await withFiles { sandbox, client, token in
            let url = sandbox.baseURL + Self.presignPath
            let missing = try await client.files(.POST, url, bearer: token, json: ["presigned_url": ""])
            #expect(missing.status == .badRequest)
            #expect(try missing.object() as? [String: [String]] == ["s3_url": ["This field is required."]])
            let notS3 = try await client.files(
                .POST, url, bearer: token, json: ["s3_url": "https://bucket/key", "presigned_url": ""])
            #expect(notS3.status == .badRequest)
            #expect(try notS3.object()["s3_url"] is [String])
            #expect(try await client.files(.POST, url, json: ["s3_url": "s3://b/k"]).status == .unauthorized)

            // Presigning never looks for the object; fetching it does.
            for (s3URL, key) in [
                ("s3://\(Self.bucket)/never-uploaded.pdf", "never-uploaded.pdf"),
                ("s3://other-bucket/docs/a.pdf", "docs/a.pdf"),
            ] {
                let presigned = try await client.presign(sandbox, token, s3URL)
                let missingObject = try await client.files(.GET, presigned, key: nil)
                #expect(missingObject.status == .notFound)
                #expect(missingObject.headers.first(name: "content-type") == "application/xml")
                #expect(missingObject.text.contains("<Code>NoSuchKey</Code>"))
                #expect(missingObject.text.contains("<Key>\(key)</Key>"))
            }
        }
    }

    @Test func tamperedOrMissingSignaturesAre403() async throws {
        try await withFiles { sandbox, client, token in
            let fileURL = try await Self.upload(client, sandbox, token, name: "a.pdf", content: Array("%PDF-1.4".utf8))
            let presigned = try await client.presign(sandbox, token, fileURL)
            #expect(try await client.files(.GET, presigned, key: nil).status == .ok)

            let lastHex = presigned.last!
            let variants = [
                String(presigned.dropLast()) + (lastHex == "0" ? "1" : "0"), // one signature digit
                presigned.replacingOccurrences(of: "X-Amz-Expires=3600", with: "X-Amz-Expires=7200"), // a longer life
                presigned.replacingOccurrences(of: "a.pdf?", with: "b.pdf?"), // another object
                String(presigned[..<presigned.range(of: "&X-Amz-Signature=")!.lowerBound]), // no signature
                presigned + "&response-content-type=text%2Fhtml", // an unsigned extra parameter
            ]
            for variant in variants {
                let refused = try await client.files(.GET, variant, key: nil)
                #expect(refused.status == .forbidden, "\(variant)")
                #expect(refused.headers.first(name: "content-type") == "application/xml")
                #expect(refused.text.contains("<Error><Code>SignatureDoesNotMatch</Code>"), "\(refused.text)")
            }
            let unsigned = try await client.files(.GET, String(presigned[..<presigned.firstIndex(of: "?")!]), key: nil)
            #expect(unsigned.status == .forbidden && unsigned.text.contains("<Code>AccessDenied</Code>"))
            let otherKeyID = try await client.files(
                .GET, presigned.replacingOccurrences(of: "AKIASANDBOXEXAMPLE42", with: "AKIAOTHER"), key: nil)
            #expect(otherKeyID.status == .forbidden && otherKeyID.text.contains("<Code>InvalidAccessKeyId</Code>"))
            let badDate = try await client.files(
                .GET, presigned.replacingOccurrences(of: "X-Amz-Date=", with: "X-Amz-Date=x"), key: nil)
            #expect(
                badDate.status == .badRequest && badDate.text.contains("<Code>AuthorizationQueryParametersError</Code>")
            )
            // A URL made by another sandbox (another secret) is refused too.
            try await withSandboxAndClient(SandboxOptions(apiKey: Self.apiKey)) { other, _ in
                let foreign = try #require(await other.presignedURL(for: fileURL))
                let port = ":\(other.port)/"
                let retargeted = foreign.replacingOccurrences(of: port, with: ":\(sandbox.port)/")
                #expect(try await client.files(.GET, retargeted, key: nil).status == .forbidden)
            }
            let put = try await client.files(.PUT, presigned, key: nil, body: [1, 2, 3])
            #expect(put.status == .methodNotAllowed)
        }
    }

    @Test func anExpiredSigV4URLIs403() async throws {
        try await withFiles { sandbox, client, token in
            let fileURL = try await Self.upload(client, sandbox, token, name: "a.pdf", content: Array("%PDF".utf8))
            let set = try await client.files(
                .POST, sandbox.baseURL + "/sandbox/presign", key: nil, json: ["lifetime_seconds": 1])
            #expect(set.status == .ok)
            #expect(try set.object()["lifetime_seconds"] as? Int == 1)
            #expect(try set.object()["form"] as? String == "v4")
            let presigned = try await client.presign(sandbox, token, fileURL)
            #expect(presigned.contains("&X-Amz-Expires=1&"))
            try await Task.sleep(for: .milliseconds(2_100))
            let expired = try await client.files(.GET, presigned, key: nil)
            #expect(expired.status == .forbidden)
            #expect(
                expired.text.contains(
                    "<Code>AccessDenied</Code><Message>Request has expired</Message><X-Amz-Expires>1</X-Amz-Expires>"))

            // A fresh one with the default lifetime works.
            try await sandbox.setPresign(lifetime: .seconds(3600))
            #expect(
                try await client.files(.GET, try await client.presign(sandbox, token, fileURL), key: nil).status == .ok)
            for bad in [
                ["lifetime_seconds": 0], ["lifetime_seconds": 604_801], ["form": "v3"], ["delay_ms": -1],
                ["lifetime_seconds": "soon"],
            ] as [[String: Any]] {
                #expect(
                    try await client.files(.POST, sandbox.baseURL + "/sandbox/presign", key: nil, json: bad).status
                        == .badRequest, "\(bad)")
            }
            await #expect(throws: (any Error).self) { try await sandbox.setPresign(lifetime: .zero) }
        }
    }

    @Test func sigV2URLsWorkAndExpire() async throws {
        var options = SandboxOptions(apiKey: Self.apiKey)
        options.presignForm = .v2
        try await withFiles(options) { sandbox, client, token in
            let content = Array("%PDF-1.7 sigv2".utf8)
            let fileURL = try await Self.upload(client, sandbox, token, name: "v2.pdf", content: content)
            let presigned = try await client.presign(sandbox, token, fileURL)
            let query = String(presigned[presigned.index(after: presigned.firstIndex(of: "?")!)...])
            let match = try #require(
                query.wholeMatch(
                    of: #/AWSAccessKeyId=AKIASANDBOXEXAMPLE42&Signature=([A-Za-z0-9%]{28,84})&Expires=(\d+)/#))
            #expect(match.output.1.hasSuffix("%3D")) // base64 padding of a 20-byte HMAC, escaped as boto3 does
            let expires = try #require(Int(match.output.2))
            #expect(abs(Double(expires) - Date().timeIntervalSince1970 - 3600) < 3)
            let expiry = try #require(PresignedURLExpiry(url: presigned))
            #expect(expiry.form == .sigV2)

            #expect(try await client.files(.GET, presigned, key: nil).body == content)
            let tampered = presigned.replacingOccurrences(of: "Expires=\(expires)", with: "Expires=\(expires + 60)")
            #expect(
                try await client.files(.GET, tampered, key: nil).text.contains("<Code>SignatureDoesNotMatch</Code>"))

            let set = try await client.files(.POST, sandbox.baseURL + "/sandbox/presign?lifetime_seconds=1", key: nil)
            #expect(set.status == .ok)
            #expect(try set.object()["form"] as? String == "v2")
            let short = try await client.presign(sandbox, token, fileURL)
            try await Task.sleep(for: .milliseconds(2_100))
            let expired = try await client.files(.GET, short, key: nil)
            #expect(expired.status == .forbidden)
            #expect(expired.text.contains("<Code>AccessDenied</Code><Message>Request has expired</Message>"))

            // Back to SigV4 at run time.
            try await sandbox.setPresign(lifetime: .seconds(60), form: .v4)
            #expect(try await client.presign(sandbox, token, fileURL).contains("X-Amz-Expires=60"))
            let settings = try await client.files(.GET, sandbox.baseURL + "/sandbox/presign", key: nil).object()
            #expect(
                settings["form"] as? String == "v4" && settings["lifetime_seconds"] as? Int == 60
                    && settings["delay_ms"] as? Int == 0)
        }
    }

    // MARK: Failure and delay controls

    @Test func failPresignsAnswersTheInjectedStatusThenRecovers() async throws {
        try await withFiles { sandbox, client, token in
            let control = try await client.files(
                .POST, sandbox.baseURL + "/sandbox/fail-presigns", key: nil, json: ["count": 2, "status": 503])
            #expect(control.status == .ok)
            #expect(try control.object() as? [String: Int] == ["count": 2, "status": 503])
            let url = sandbox.baseURL + Self.presignPath
            for _ in 0..<2 {
                let failed = try await client.files(
                    .POST, url, bearer: token, json: ["s3_url": "s3://b/k.pdf", "presigned_url": ""])
                #expect(failed.status == .serviceUnavailable)
                #expect(try failed.object() as? [String: String] == ["detail": "Injected presign failure."])
            }
            #expect(try await client.files(.POST, url, bearer: token, json: ["s3_url": "s3://b/k.pdf"]).status == .ok)
            #expect(await sandbox.counters().route("POST", Self.presignPath) == 3)

            // In Swift too; the defaults are one call and 500; count 0 cancels.
            try await sandbox.failPresigns(1)
            #expect(
                try await client.files(.POST, url, bearer: token, json: ["s3_url": "s3://b/k.pdf"]).status
                    == .internalServerError)
            try await sandbox.failPresigns(5, status: 502)
            try await sandbox.failPresigns(0)
            #expect(try await client.files(.POST, url, bearer: token, json: ["s3_url": "s3://b/k.pdf"]).status == .ok)
            let defaults = try await client.files(.POST, sandbox.baseURL + "/sandbox/fail-presigns", key: nil)
            #expect(try defaults.object() as? [String: Int] == ["count": 1, "status": 500])
            try await sandbox.failPresigns(0)
            #expect(
                try await client.files(
                    .POST, sandbox.baseURL + "/sandbox/fail-presigns", key: nil, json: ["status": 200]
                ).status == .badRequest)
            #expect(
                try await client.files(.GET, sandbox.baseURL + "/sandbox/fail-presigns", key: nil).status
                    == .methodNotAllowed)
            await #expect(throws: (any Error).self) { try await sandbox.failPresigns(-1) }
        }
    }

    @Test func aPresignDelayMakesConcurrentCallsOverlap() async throws {
        try await withFiles { sandbox, client, token in
            // 1 s each: overlapping calls take about 1 s, one after another 6 s; a loaded 2-core machine's stalls
            // of a second or two keep the two apart.
            let set = try await client.files(
                .POST, sandbox.baseURL + "/sandbox/presign", key: nil, json: ["delay_ms": 1000])
            #expect(try set.object()["delay_ms"] as? Int == 1000)
            let url = sandbox.baseURL + Self.presignPath
            let start = ContinuousClock.now
            try await withThrowingTaskGroup(of: HTTPResponseStatus.self) { group in
                for _ in 0..<6 {
                    group.addTask {
                        try await client.files(.POST, url, bearer: token, json: ["s3_url": "s3://b/same.pdf"]).status
                    }
                }
                for try await status in group { #expect(status == .ok) }
            }
            let elapsed = ContinuousClock.now - start
            #expect(elapsed >= .milliseconds(1000))
            #expect(elapsed < .milliseconds(6 * 1000), "the six calls waited one after another")
            #expect(await sandbox.counters().route("POST", Self.presignPath) == 6)
        }
    }

    @Test func failProviderDocumentsFailsTheNextPostsAndStoresNothing() async throws {
        try await withFiles { sandbox, client, token in
            let control = try await client.files(
                .POST, sandbox.baseURL + "/sandbox/fail-provider-documents", key: nil,
                json: ["count": 1, "status": 500])
            #expect(try control.object() as? [String: Int] == ["count": 1, "status": 500])
            let documents = sandbox.baseURL + "/api/v1/users/provider-documents/"
            let document: [String: Any] = [
                "provider": "p-1", "document_url": "s3://\(Self.bucket)/x.pdf", "document_name": "License",
            ]
            let failed = try await client.files(.POST, documents, bearer: token, json: document)
            #expect(failed.status == .internalServerError)
            #expect(try failed.object() as? [String: String] == ["detail": "Injected provider-document failure."])
            #expect(try await client.files(.GET, documents, bearer: token).object()["count"] as? Int == 0)
            #expect(try await client.files(.POST, documents, bearer: token, json: document).status == .created)

            try await sandbox.failProviderDocuments(2, status: 422)
            #expect(
                try await client.files(.POST, documents, bearer: token, json: document).status == .unprocessableEntity)
            #expect(
                try await client.files(.POST, documents, bearer: token, json: document).status == .unprocessableEntity)
            #expect(try await client.files(.POST, documents, bearer: token, json: document).status == .created)
            // Reads are not failed.
            try await sandbox.failProviderDocuments(1)
            #expect(try await client.files(.GET, documents, bearer: token).object()["count"] as? Int == 2)
        }
    }

    @Test func providerDocumentsAnswerAPresignedURLOfAnS3DocumentURL() async throws {
        try await withFiles { sandbox, client, token in
            let content = Array("%PDF-1.4 attached".utf8)
            let fileURL = try await Self.upload(client, sandbox, token, name: "license.pdf", content: content)
            let documents = sandbox.baseURL + "/api/v1/users/provider-documents/"
            let created = try await client.files(
                .POST, documents, bearer: token,
                json: [
                    "id": "", "provider": "p-9", "document_name": "License", "document_type": "license",
                    "document_url": fileURL, "presigned_document_url": "",
                ])
            #expect(created.status == .created)
            let document = try created.object()
            let presigned = try #require(document["presigned_document_url"] as? String)
            #expect(PresignedURLExpiry(url: presigned)?.form == .sigV4)
            #expect(try await client.files(.GET, presigned, key: nil).body == content)

            // Fresh in the list and by id too.
            let list = try await client.files(.GET, documents + "?provider=p-9", bearer: token).object()
            let listed = try #require((list["results"] as? [[String: Any]])?.first)
            let listedURL = try #require(listed["presigned_document_url"] as? String)
            #expect(try await client.files(.GET, listedURL, key: nil).body == content)
            let one = try await client.files(.GET, documents + "\(document["id"] as? String ?? "")/", bearer: token)
                .object()
            #expect((one["presigned_document_url"] as? String)?.contains("X-Amz-Signature=") == true)

            // Not an s3:// URL: nothing to presign.
            let plain = try await client.files(
                .POST, documents, bearer: token, json: ["provider": "p-9", "document_url": "https://example.com/a.pdf"])
            #expect(try plain.object()["presigned_document_url"] as? String == "")
        }
    }

    // MARK: Transport counter

    @Test func bytesReceivedCountsEveryRawByteAndIsReset() async throws {
        try await withFiles { sandbox, client, _ in
            let before = await sandbox.counters()
            let request = "GET /sandbox/healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
            let answer = try await RawClient.exchange(port: sandbox.port, request)
            #expect(answer.firstStatus == 200)
            let after = await sandbox.counters()
            #expect(after.bytesReceived - before.bytesReceived == request.utf8.count)
            #expect(after.connections - before.connections == 1)

            // Bytes that never make an HTTP request count too: the start of anything at all.
            let garbage = "\u{16}\u{03}\u{01} not http at all\r\n\r\n"
            _ = try await RawClient.exchange(port: sandbox.port, garbage, idle: .milliseconds(300))
            #expect(await sandbox.counters().bytesReceived - after.bytesReceived == garbage.utf8.count)

            #expect(
                try await client.files(.DELETE, sandbox.baseURL + "/sandbox/counters", key: nil).status == .noContent)
            let reset = await sandbox.counters()
            #expect(reset.bytesReceived == 0 && reset.connections == 0)
            #expect(reset == SandboxCounters())

            // Over HTTP: snake_case keys, and the GET that reads them is already counted.
            let served = try await client.files(.GET, sandbox.baseURL + "/sandbox/counters", key: nil).object()
            #expect((served["bytes_received"] as? Int ?? 0) > 0)
            #expect(served["connections"] is Int)
            let decoded = try JSONDecoder().decode(
                SandboxCounters.self, from: JSONSerialization.data(withJSONObject: served))
            #expect(decoded.bytesReceived == served["bytes_received"] as? Int)
        }
    }

    // MARK: Helpers

    enum Part {
        case field(String, String)
        case file(String, filename: String, contentType: String?, [UInt8])
    }

    /// A multipart/form-data body with ``boundary``.
    static func multipart(_ parts: [Part]) -> [UInt8] {
        var body: [UInt8] = []
        for part in parts {
            body += Array("--\(boundary)\r\n".utf8)
            switch part {
            case .field(let name, let value):
                body += Array("Content-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)".utf8)
            case .file(let name, let filename, let contentType, let content):
                var head =
                    "Content-Disposition: form-data; name=\"\(name)\"; filename=\"\(filename.replacingOccurrences(of: "\\", with: "\\\\"))\"\r\n"
                if let contentType { head += "Content-Type: \(contentType)\r\n" }
                body += Array((head + "\r\n").utf8) + content
            }
            body += Array("\r\n".utf8)
        }
        return body + Array("--\(boundary)--\r\n".utf8)
    }

    /// Pseudo-random bytes salted with CR LF, dashes and a boundary missing its last character.
    static func awkwardBytes(count: Int) -> [UInt8] {
        var state: UInt64 = 0x5eed
        var bytes = SandboxTests.SeededChunks.bytes(state: &state, count: count)
        // The near-miss boundary ends in a byte that cannot complete it.
        let traps = [
            Array("\r\n".utf8), Array("\r\n--".utf8), Array("\r\n--\(boundary.dropLast())Z".utf8),
            Array("\r\r\n-".utf8),
        ]
        var at = 17
        var i = 0
        while at + 64 < count {
            let trap = traps[i % traps.count]
            bytes.replaceSubrange(at..<at + trap.count, with: trap)
            at += 997 + i % 13
            i += 1
        }
        return bytes
    }

    /// Uploads `content` as `name` and returns its `file_url`.
    static func upload(_ client: HTTPClient, _ sandbox: SandboxServer, _ token: String, name: String, content: [UInt8])
        async throws -> String
    {
        let response = try await client.files(
            .POST, sandbox.baseURL + uploadPath, bearer: token,
            contentType: "multipart/form-data; boundary=\(boundary)",
            body: multipart([
                .field("name", name), .file("file", filename: name, contentType: "application/pdf", content),
            ]))
        guard response.status == .created, let fileURL = try response.object()["file_url"] as? String else {
            throw FilesTestError.status(response.status.code, response.text)
        }
        return fileURL
    }

    static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        digest.map { String(format: "%02x", $0) }.joined()
    }

    /// A sandbox, a client, and an access token of the default account.
    func withFiles(
        _ options: SandboxOptions = SandboxOptions(apiKey: SandboxFilesTests.apiKey),
        _ body: (SandboxServer, HTTPClient, String) async throws -> Void
    ) async throws {
        try await withSandboxAndClient(options) { sandbox, client in
            try await body(sandbox, client, try await SandboxSessionTests.login(client, sandbox))
        }
    }
}

enum FilesTestError: Error {
    case status(UInt, String)
    case notAnObject
}

/// An answer read to its end.
struct FilesResponse {
    var status: HTTPResponseStatus
    var headers: HTTPHeaders
    var body: [UInt8]
    var text: String { String(decoding: body, as: UTF8.self) }

    func object() throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            throw FilesTestError.notAnObject
        }
        return object
    }
}

extension HTTPClient {
    /// Sends a request with the files suite's key unless told otherwise (nil sends none), an optional bearer
    /// token, and a raw or JSON body; reads the whole answer.
    fileprivate func files(
        _ method: HTTPMethod,
        _ url: String,
        key: String? = SandboxFilesTests.apiKey,
        bearer: String? = nil,
        contentType: String? = nil,
        body: [UInt8]? = nil,
        json: [String: Any]? = nil
    ) async throws -> FilesResponse {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let key { request.headers.add(name: "x-api-key", value: key) }
        if let bearer { request.headers.add(name: "Authorization", value: "Bearer \(bearer)") }
        if let json {
            request.headers.add(name: "content-type", value: "application/json")
            request.body = .bytes(Array(try JSONSerialization.data(withJSONObject: json)))
        } else if let body {
            if let contentType { request.headers.add(name: "content-type", value: contentType) }
            request.body = .bytes(body)
        }
        let response = try await execute(request, timeout: .seconds(60))
        let collected = try await response.body.collect(upTo: 64 << 20)
        return FilesResponse(
            status: response.status, headers: response.headers, body: Array(collected.readableBytesView))
    }

    /// Presigns `s3URL`, expecting success: the URL.
    fileprivate func presign(_ sandbox: SandboxServer, _ token: String, _ s3URL: String) async throws -> String {
        let response = try await files(
            .POST, sandbox.baseURL + SandboxFilesTests.presignPath, bearer: token,
            json: ["s3_url": s3URL, "presigned_url": ""])
        guard response.status == .ok, let url = try response.object()["presigned_url"] as? String else {
            throw FilesTestError.status(response.status.code, response.text)
        }
        return url
    }
}
