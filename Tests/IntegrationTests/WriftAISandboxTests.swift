import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1
import Sandbox
import Testing

/// The WriftAI emulator through real sockets: the bearer check, cursor pages, predictions and their event streams
/// (timing included), the three-step upload with its presigned part URLs and every way a part PUT is refused, SDK
/// 0.28's one-step upload, signed downloads, injected 429s, the counters and the `/sandbox/` controls, and the
/// platform list `credgate serve --sandbox` starts from.
@Suite("WriftAI sandbox")
struct WriftAISandboxTests {
    static let token = "wriftai-sandbox-test-token-31"

    // MARK: Bearer token

    @Test func theBearerTokenIsRequiredAndAWrongOneIsA401Problem() async throws {
        try await withWriftAI { (sandbox, client) async throws in
            let url = sandbox.apiBaseURL + "/user"
            for (authorization, detail) in [
                (nil, "Authentication credentials were not provided."),
                ("Bearer wrong-token", "Invalid access token."),
                ("Basic \(Self.token)", "Invalid access token."),
                ("Bearer \(Self.token)x", "Invalid access token."),
            ] {
                let response = try await client.wriftai(.GET, url, authorization: authorization)
                #expect(response.status == .unauthorized)
                #expect(response.headers["content-type"].first == "application/problem+json")
                #expect(response.headers["www-authenticate"].first?.hasPrefix("Bearer") == true)
                let problem = try response.object()
                #expect(problem["status"] as? Int == 401 && problem["detail"] as? String == detail, "\(problem)")
            }
            let user = try await client.wriftai(.GET, url)
            #expect(user.status == .ok)
            #expect(try user.object()["name"] as? String == "sandbox")
            let counters = await sandbox.counters()
            #expect(counters.unauthorized == 4)
            #expect(counters.route("GET", "/v1/user") == 5)
            let recorded = await sandbox.recorder.all()
            #expect(recorded.count == 5 && recorded.last?.header("authorization") == "Bearer \(Self.token)")
            // Unknown paths are 404 problems, after the token check.
            #expect(try await client.wriftai(.GET, sandbox.apiBaseURL + "/nothing-here").status == .notFound)
            #expect(
                try await client.wriftai(.GET, sandbox.apiBaseURL + "/nothing-here", authorization: nil).status
                    == .unauthorized)
        }
    }

    // MARK: Models

    @Test func modelsComeInCursorPagesWithExactlyTheSDKsThreeKeys() async throws {
        try await withWriftAI { (sandbox, client) async throws in
            var names: [String] = []
            var cursor: String?
            var pages: [[String: Any]] = []
            repeat {
                let query = "?page_size=2" + (cursor.map { "&cursor=\($0)" } ?? "")
                let response = try await client.wriftai(.GET, sandbox.apiBaseURL + "/models" + query)
                #expect(response.status == .ok)
                let page = try response.object()
                #expect(Set(page.keys) == ["items", "next_cursor", "previous_cursor"])
                let items = try #require(page["items"] as? [[String: Any]])
                names += items.compactMap { $0["name"] as? String }
                for item in items {
                    let owner = try #require(item["owner"] as? [String: Any])
                    #expect(
                        owner["name"] as? String == "sandbox" && item["id"] is String
                            && item["visibility"] as? String == "public")
                }
                pages.append(page)
                cursor = page["next_cursor"] as? String
            } while cursor != nil && pages.count < 10
            #expect(pages.count == 3)
            #expect(names == ["echo", "uppercase", "reverse", "word-count", "slow-stream"])
            #expect(
                pages[0]["previous_cursor"] is NSNull && pages[1]["previous_cursor"] is String
                    && pages[2]["next_cursor"] is NSNull)
            // The previous cursor of page 2 leads back to page 1.
            let back = try await client.wriftai(
                .GET, sandbox.apiBaseURL + "/models?page_size=2&cursor=\(pages[1]["previous_cursor"] as! String)")
            #expect((try back.object()["items"] as? [[String: Any]])?.first?["name"] as? String == "echo")

            #expect(
                try await client.wriftai(.GET, sandbox.apiBaseURL + "/models?cursor=not-a-cursor!").status
                    == .badRequest)
            #expect(
                try await client.wriftai(.GET, sandbox.apiBaseURL + "/models?page_size=0").status
                    == .unprocessableEntity)
            let model = try await client.wriftai(.GET, sandbox.apiBaseURL + "/models/sandbox/echo")
            #expect(model.status == .ok)
            #expect((try model.object()["latest_version"] as? [String: Any])?["number"] as? Int == 1)
            #expect(try await client.wriftai(.GET, sandbox.apiBaseURL + "/models/sandbox/nope").status == .notFound)
            let byOwner = try await client.wriftai(.GET, sandbox.apiBaseURL + "/models/sandbox?page_size=100")
            #expect((try byOwner.object()["items"] as? [Any])?.count == 5)
            #expect(await sandbox.counters().route("GET", "/v1/models") == 6)

            // SDK 0.28's shape: absolute next_url/previous_url as well, which lead to the same pages.
            await sandbox.setPageURLs(true)
            let first = try await client.wriftai(.GET, sandbox.apiBaseURL + "/models?page_size=2").object()
            #expect(Set(first.keys) == ["items", "next_cursor", "previous_cursor", "next_url", "previous_url"])
            let nextURL = try #require(first["next_url"] as? String)
            #expect(nextURL == sandbox.apiBaseURL + "/models?cursor=\(first["next_cursor"] as! String)&page_size=2")
            let second = try await client.wriftai(.GET, nextURL).object()
            #expect((second["items"] as? [[String: Any]])?.first?["name"] as? String == "reverse")
            #expect(
                second["previous_url"] as? String == sandbox.apiBaseURL
                    + "/models?cursor=\(second["previous_cursor"] as! String)&page_size=2")
            #expect(first["previous_url"] is NSNull)
            let pagesControl = try await client.wriftai(
                .POST, sandbox.baseURL + "/sandbox/pages", authorization: nil, json: ["urls": false])
            #expect(try pagesControl.object()["urls"] as? Bool == false)
            #expect(
                Set(try await client.wriftai(.GET, sandbox.apiBaseURL + "/models").object().keys) == [
                    "items", "next_cursor", "previous_cursor",
                ])
        }
    }

    // MARK: Predictions

    @Test func predictionsAreCreatedListedFetchedAndCancelled() async throws {
        try await withWriftAI { (sandbox, client) async throws in
            try await sandbox.setStream(.every(.seconds(30), count: 2))
            let created = try await client.wriftai(
                .POST, sandbox.apiBaseURL + "/predictions",
                json: ["model": "sandbox/echo", "input": ["prompt": "hi", "n": 2.5]])
            #expect(created.status == .created, "\(created.text)")
            let prediction = try created.object()
            let id = try #require(prediction["id"] as? String)
            #expect(prediction["status"] as? String == "started")
            #expect((prediction["input"] as? [String: Any])?["n"] as? Double == 2.5)
            #expect((prediction["model"] as? [String: Any])?["version_number"] as? Int == 1)

            let fetched = try await client.wriftai(.GET, sandbox.apiBaseURL + "/predictions/\(id)")
            #expect(try fetched.object()["id"] as? String == id)
            let list = try await client.wriftai(.GET, sandbox.apiBaseURL + "/predictions?page_size=10")
            let items = try #require(try list.object()["items"] as? [[String: Any]])
            #expect(items.first?["id"] as? String == id && items.first?["input"] == nil)

            let cancelled = try await client.wriftai(.POST, sandbox.apiBaseURL + "/predictions/\(id)/cancel")
            #expect(cancelled.status == .ok)
            #expect(try cancelled.object()["status"] as? String == "cancelled")
            #expect(await sandbox.predictionStatus(id: id) == "cancelled")
            let filtered = try await client.wriftai(.GET, sandbox.apiBaseURL + "/predictions?statuses=succeeded")
            #expect((try filtered.object()["items"] as? [Any])?.isEmpty == true)

            // Refusals: an unknown model or version, no input, a malformed reference, an unknown prediction.
            let bodies: [([String: Any], HTTPResponseStatus)] = [
                (["model": "sandbox/nope", "input": [:] as [String: Any]], .notFound),
                (["model": "sandbox/echo:7", "input": [:] as [String: Any]], .notFound),
                (["model": "sandbox/echo"], .unprocessableEntity),
                (["model": "echo", "input": [:] as [String: Any]], .unprocessableEntity),
            ]
            for (body, status) in bodies {
                #expect(
                    try await client.wriftai(.POST, sandbox.apiBaseURL + "/predictions", json: body).status == status,
                    "\(body)")
            }
            #expect(try await client.wriftai(.GET, sandbox.apiBaseURL + "/predictions/prd_nope").status == .notFound)
            #expect(
                try await client.wriftai(.POST, sandbox.apiBaseURL + "/predictions/prd_nope/cancel").status == .notFound
            )
        }
    }

    @Test func preferWaitAnswersTheFinishedPrediction() async throws {
        try await withWriftAI { (sandbox, client) async throws in
            try await sandbox.setStream(.every(.milliseconds(200), count: 2))
            let start = ContinuousClock.now
            let response = try await client.wriftai(
                .POST, sandbox.apiBaseURL + "/predictions",
                headers: ["Prefer": "wait"], json: ["model": "sandbox/echo:1", "input": ["x": 1]])
            #expect(ContinuousClock.now - start >= .milliseconds(350))
            let prediction = try response.object()
            #expect(prediction["status"] as? String == "succeeded")
            #expect((prediction["output"] as? [String: Any])?["echo"] as? [String: Int] == ["x": 1])
        }
    }

    // MARK: Streams

    @Test func aStreamSendsEachEventWhenItIsDueNotInABatch() async throws {
        try await withWriftAI { (sandbox, client) async throws in
            try await sandbox.setStream(.every(.milliseconds(500), count: 6))
            let id = try await Self.createPrediction(client, sandbox)
            let events = try await client.readEvents(sandbox.apiBaseURL + "/predictions/\(id)/stream")
            #expect(events.contentType == "text/event-stream")
            #expect(events.list.map(\.event) == ["init"] + Array(repeating: "output", count: 6) + ["done"])
            #expect(events.list.map(\.id) == (0...7).map(String.init))
            #expect((events.list.first?.data["id"] as? String) == id)
            #expect(events.list.last?.data["status"] as? String == "succeeded")
            // The sandbox sends the six outputs 500 ms apart (never closer, even after a stall), and they arrive
            // spread over seconds: a stream buffered until its end would bring them all within a few milliseconds.
            // (The arrival bound leaves room for a client stalled on a loaded machine.)
            let sent = events.list.filter { $0.event == "output" }.compactMap { $0.data["emitted_at"] as? Int }
            #expect(sent.count == 6)
            for (earlier, later) in zip(sent, sent.dropFirst()) {
                #expect(later - earlier >= 495, "sent \(later - earlier) ms apart")
            }
            let outputs = events.list.filter { $0.event == "output" }.map(\.arrival)
            #expect(outputs.last! - outputs.first! >= .milliseconds(1_500), "\(outputs.last! - outputs.first!)")
            // The sandbox counts a finished stream just after its last byte: give it a moment.
            let counters = await Self.eventually(sandbox) { $0.streamsFinished == 1 }
            #expect(counters.streamsOpened == 1 && counters.streamsFinished == 1 && counters.streamEvents == 8)
        }
    }

    @Test func anEventAfterALongPauseStillArrivesAndTheQueryCanAskForAnyTimeline() async throws {
        try await withWriftAI { (sandbox, client) async throws in
            let id = try await Self.createPrediction(client, sandbox)
            // A fresh timeline from the query: one event at once, one after a 2.5 s pause, with keep-alive
            // comments (which the SDK skips) in the pause.
            let start = ContinuousClock.now
            let events = try await client.readEvents(
                sandbox.apiBaseURL + "/predictions/\(id)/stream?delays_ms=50,2500&heartbeat_ms=500")
            let outputs = events.list.filter { $0.event == "output" }
            try #require(outputs.count == 2)
            #expect(events.list.last?.event == "done")
            #expect(
                (outputs[1].data["emitted_at"] as? Int ?? 0) - (outputs[0].data["emitted_at"] as? Int ?? 0) >= 2_495)
            #expect(outputs[1].arrival - outputs[0].arrival >= .milliseconds(1_500))
            #expect(outputs[1].arrival - start < .seconds(10))
            // Four are due in the pause; a loaded machine's late wake-ups may merge some, but never all.
            #expect(events.comments >= 1, "\(events.comments) keep-alive comments")
            #expect(outputs[0].data["emitted_at"] is Int)
        }
    }

    @Test func anIdleLimitClosesTheStreamAndAfterIDResumesIt() async throws {
        try await withWriftAI { (sandbox, client) async throws in
            try await sandbox.setStream(StreamPlan(delays: [.milliseconds(100), .milliseconds(2_500)]))
            let id = try await Self.createPrediction(client, sandbox)
            // Prefer: wait=1: the server closes the connection after 1 s without an event, with no terminal event.
            let first = try await client.readEvents(
                sandbox.apiBaseURL + "/predictions/\(id)/stream", headers: ["Prefer": "wait=1"])
            #expect(first.list.map(\.event) == ["init", "output"])
            // The SDK reconnects with after_id: the timeline goes on from there.
            let second = try await client.readEvents(sandbox.apiBaseURL + "/predictions/\(id)/stream?after_id=1")
            #expect(second.list.map(\.id) == ["2", "3"])
            #expect(second.list.map(\.event) == ["output", "done"])
        }
    }

    @Test func createWithWaitAndStreamAnswersTheStreamItself() async throws {
        try await withWriftAI { (sandbox, client) async throws in
            try await sandbox.setStream(.every(.milliseconds(100), count: 2))
            let events = try await client.readEvents(
                sandbox.apiBaseURL + "/predictions", method: .POST, headers: ["Prefer": "wait"],
                json: ["model": "sandbox/echo", "input": ["a": "b"], "stream": true])
            #expect(events.list.map(\.event) == ["init", "output", "output", "done"])
            #expect(events.list.first?.data["id"] is String)
        }
    }

    @Test func aCancelledPredictionsStreamEndsAtOnce() async throws {
        try await withWriftAI { (sandbox, client) async throws in
            // The next event is a minute away: an end well before it is the cancel's doing (the bound is generous
            // for a loaded 2-core machine).
            try await sandbox.setStream(.every(.seconds(60), count: 3))
            let id = try await Self.createPrediction(client, sandbox)
            let start = ContinuousClock.now
            async let events = client.readEvents(sandbox.apiBaseURL + "/predictions/\(id)/stream")
            try await Task.sleep(for: .milliseconds(300))
            _ = try await client.wriftai(.POST, sandbox.apiBaseURL + "/predictions/\(id)/cancel")
            let list = try await events.list
            #expect(list.map(\.event) == ["init", "done"])
            #expect(list.last?.data["status"] as? String == "cancelled")
            #expect(ContinuousClock.now - start < .seconds(30))
        }
    }

    // MARK: Three-step upload

    @Test func theThreeStepUploadStoresTheFileAndServesItThroughItsSignedURL() async throws {
        try await withWriftAI(partSize: 1000) { (sandbox, client) async throws in
            let content = (0..<2500).map { UInt8(truncatingIfNeeded: $0 &* 7) }
            let upload = try await Self.createUpload(client, sandbox, size: content.count, mimeType: "application/pdf")
            #expect(upload.partSize == 1000 && upload.urls.count == 3)
            for url in upload.urls {
                #expect(
                    url.hasPrefix(sandbox.baseURL + "/sandbox-s3/\(sandbox.bucket)/uploads/\(upload.id)?partNumber="))
                #expect(url.contains("X-Amz-SignedHeaders=content-length%3Bcontent-type%3Bhost"))
            }
            var etags: [String] = []
            for (index, url) in upload.urls.enumerated() {
                let part = Array(content[(index * 1000)..<min(content.count, (index + 1) * 1000)])
                let response = try await client.put(url, body: part, contentType: "application/pdf")
                #expect(response.status == .ok, "\(response.text)")
                etags.append(try #require(response.headers["etag"].first))
            }
            // Completing with the ETags out of order is refused and leaves the upload open.
            let wrongOrder = try await client.wriftai(
                .POST, sandbox.apiBaseURL + "/uploads/\(upload.id)/complete",
                json: ["etags": [etags[1], etags[0], etags[2]]])
            #expect(wrongOrder.status == .badRequest)
            let complete = try await client.wriftai(
                .POST, sandbox.apiBaseURL + "/uploads/\(upload.id)/complete", json: ["etags": etags])
            #expect(complete.status == .ok, "\(complete.text)")
            let downloadURL = try #require(try complete.object()["download_url"] as? String)
            #expect(downloadURL.hasPrefix(sandbox.baseURL + "/sandbox-s3/"))
            let download = try await client.wriftai(.GET, downloadURL, authorization: nil)
            #expect(download.status == .ok)
            #expect(download.body == content)
            #expect(download.headers["content-type"].first == "application/pdf")
            #expect(await sandbox.storedObject(key: "uploads/\(upload.id)")?.bytes == content)
            // The same completion again gets a fresh URL; a tampered download URL is refused.
            #expect(
                try await client.wriftai(
                    .POST, sandbox.apiBaseURL + "/uploads/\(upload.id)/complete", json: ["etags": etags]
                ).status == .ok)
            let tampered = downloadURL.replacingOccurrences(of: "X-Amz-Expires=3600", with: "X-Amz-Expires=3601")
            #expect(tampered != downloadURL)
            #expect(try await client.wriftai(.GET, tampered, authorization: nil).status == .forbidden)

            let counters = await sandbox.counters()
            #expect(counters.partPuts == 3 && counters.completes == 1 && counters.downloads == 1)
            #expect(counters.route("PUT", "/sandbox-s3/{bucket}/{key}") == 3)
            // The storage saw no Authorization header, and exactly the bytes of each part.
            let puts = await sandbox.recorder.all().filter { $0.method == "PUT" }
            #expect(puts.count == 3 && puts.allSatisfy { $0.header("authorization") == nil })
            #expect(puts.map(\.bodyBytes) == [1000, 1000, 500])
        }
    }

    @Test func aPartPUTIsRefusedForAWrongLengthOrTypeAnAuthorizationHeaderOrATamperedURL() async throws {
        try await withWriftAI(partSize: 1000) { (sandbox, client) async throws in
            let upload = try await Self.createUpload(client, sandbox, size: 1500, mimeType: "image/png")
            let url = upload.urls[0]
            let part = [UInt8](repeating: 0x42, count: 1000)

            let shorter = try await client.put(url, body: Array(part.dropLast()), contentType: "image/png")
            #expect(shorter.status == .forbidden)
            #expect(
                shorter.text.contains("<Code>SignatureDoesNotMatch</Code>")
                    && shorter.text.contains("<SignedHeader>Content-Length</SignedHeader>"))
            let longer = try await client.put(url, body: part + [0], contentType: "image/png")
            #expect(longer.status == .forbidden)

            let otherType = try await client.put(url, body: part, contentType: "image/jpeg")
            #expect(otherType.status == .forbidden)
            #expect(otherType.text.contains("<SignedHeader>Content-Type</SignedHeader>"))
            let noType = try await client.put(url, body: part, contentType: nil)
            #expect(noType.status == .forbidden)

            let withToken = try await client.put(
                url, body: part, contentType: "image/png", authorization: "Bearer \(Self.token)")
            #expect(withToken.status == .forbidden)
            #expect(withToken.text.contains("Only one auth mechanism allowed"))

            let chunked = try await client.put(url, chunked: part, contentType: "image/png")
            #expect(chunked.status == .lengthRequired)

            let tampered = url.replacingOccurrences(of: "partNumber=1", with: "partNumber=2")
            #expect(
                try await client.put(tampered, body: Array(part.prefix(500)), contentType: "image/png").status
                    == .forbidden)
            let unsigned = String(url[..<url.firstIndex(of: "?")!]) + "?partNumber=1&uploadId=\(upload.id)"
            #expect(try await client.put(unsigned, body: part, contentType: "image/png").status == .forbidden)

            // Nothing was stored: completing still lacks both parts.
            #expect(await sandbox.counters().partPuts == 0)
            #expect(await sandbox.counters().putRejections == 8)
            let complete = try await client.wriftai(
                .POST, sandbox.apiBaseURL + "/uploads/\(upload.id)/complete", json: ["etags": ["x", "y"]])
            #expect(complete.status == .badRequest)
            #expect(complete.text.contains("part(s) 1, 2 of 2 not uploaded"))
            // The right PUT still works.
            #expect(try await client.put(url, body: part, contentType: "image/png").status == .ok)
        }
    }

    @Test func anExpiredPartURLIsRefused() async throws {
        try await withWriftAI(partSize: 1000) { (sandbox, client) async throws in
            try await sandbox.setURLs(lifetime: .seconds(1))
            let upload = try await Self.createUpload(client, sandbox, size: 10, mimeType: "text/plain")
            #expect(upload.urls[0].contains("X-Amz-Expires=1&"))
            #expect(upload.partSize == 10)
            try await Task.sleep(for: .milliseconds(2_200))
            let late = try await client.put(upload.urls[0], body: Array("0123456789".utf8), contentType: "text/plain")
            #expect(late.status == .forbidden)
            #expect(late.text.contains("Request has expired"))
            #expect(await sandbox.counters().partPuts == 0)
        }
    }

    @Test func uploadRequestsAreValidated() async throws {
        try await withWriftAI { (sandbox, client) async throws in
            for body: [String: Any] in [
                ["mime_type": "text/plain"], ["size": -1, "mime_type": "text/plain"],
                ["size": 1.5, "mime_type": "text/plain"],
                ["size": 10], ["size": 10, "mime_type": "plain"],
            ] {
                #expect(
                    try await client.wriftai(.POST, sandbox.apiBaseURL + "/uploads", json: body).status
                        == .unprocessableEntity, "\(body)")
            }
            #expect(
                try await client.wriftai(
                    .POST, sandbox.apiBaseURL + "/uploads", json: ["size": 1 << 40, "mime_type": "text/plain"]
                ).status == .payloadTooLarge)
            #expect(
                try await client.wriftai(.POST, sandbox.apiBaseURL + "/uploads/upl_nope/complete", json: ["etags": []])
                    .status == .notFound)
            #expect(try await client.wriftai(.GET, sandbox.apiBaseURL + "/uploads").status == .methodNotAllowed)
        }
    }

    // MARK: One-step upload (SDK 0.28)

    @Test func theOneStepUploadTakesOnePUTOfExactlyTheDeclaredSizeAndType() async throws {
        try await withWriftAI { (sandbox, client) async throws in
            let content = Array("%PDF-1.7 one step".utf8)
            let urls = try await client.wriftai(
                .POST, sandbox.apiBaseURL + "/files/urls",
                json: [
                    "name": "report.pdf", "size": content.count, "resource": "prediction",
                    "mime_type": "application/pdf",
                ])
            #expect(urls.status == .ok, "\(urls.text)")
            let uploadURL = try #require(try urls.object()["upload_url"] as? String)
            let downloadURL = try #require(try urls.object()["download_url"] as? String)
            #expect(try await client.wriftai(.GET, downloadURL, authorization: nil).status == .notFound)
            #expect(
                try await client.put(uploadURL, body: content + content, contentType: "application/pdf").status
                    == .forbidden)
            #expect(
                try await client.put(uploadURL, body: content, contentType: "application/octet-stream").status
                    == .forbidden)
            #expect(try await client.put(uploadURL, body: content, contentType: "application/pdf").status == .ok)
            let download = try await client.wriftai(.GET, downloadURL, authorization: nil)
            #expect(download.status == .ok && download.body == content)
            let key = try #require(await sandbox.storedObjectKeys().first)
            #expect(key.hasPrefix("files/") && key.hasSuffix(".pdf"))
            #expect(await sandbox.counters().singlePuts == 1)
            #expect(
                try await client.wriftai(
                    .POST, sandbox.apiBaseURL + "/files/urls",
                    json: ["name": "a.pdf", "size": 1, "resource": "model", "mime_type": "application/pdf"]
                ).status == .unprocessableEntity)
        }
    }

    // MARK: Rate limits

    @Test func injected429sCarryXRateLimitResetAndCountDown() async throws {
        try await withWriftAI { (sandbox, client) async throws in
            try await sandbox.rateLimit(next: 2, path: "/v1/models", resetAfter: .seconds(3))
            for _ in 0..<2 {
                let before = Int(Date().timeIntervalSince1970)
                let throttled = try await client.wriftai(.GET, sandbox.apiBaseURL + "/models")
                #expect(throttled.status == .tooManyRequests)
                let reset = try #require(throttled.headers["x-ratelimit-reset"].first.flatMap { Int($0) })
                #expect(reset >= before + 3 && reset <= Int(Date().timeIntervalSince1970) + 3)
                // Other paths are not affected.
                #expect(try await client.wriftai(.GET, sandbox.apiBaseURL + "/user").status == .ok)
            }
            #expect(try await client.wriftai(.GET, sandbox.apiBaseURL + "/models").status == .ok)
            // Over HTTP, with no path: the next API request, whatever it is; a wrong token is refused first.
            let control = try await client.wriftai(
                .POST, sandbox.baseURL + "/sandbox/rate-limit", authorization: nil,
                json: ["count": 1, "reset_seconds": 5])
            #expect(control.status == .ok)
            #expect(
                try await client.wriftai(.GET, sandbox.apiBaseURL + "/user", authorization: nil).status == .unauthorized
            )
            #expect(try await client.wriftai(.GET, sandbox.apiBaseURL + "/hardware").status == .tooManyRequests)
            #expect(try await client.wriftai(.GET, sandbox.apiBaseURL + "/hardware").status == .ok)
            // A route template: the stream route of any prediction; and the storage.
            try await sandbox.rateLimit(next: 1, path: "/v1/predictions/{id}/stream")
            let id = try await Self.createPrediction(client, sandbox)
            #expect(
                try await client.wriftai(.GET, sandbox.apiBaseURL + "/predictions/\(id)/stream").status
                    == .tooManyRequests)
            #expect(await sandbox.counters().rateLimited == 4)
        }
    }

    // MARK: Controls over HTTP

    @Test func theControlsWorkOverHTTPWithoutTheToken() async throws {
        try await withWriftAI { (sandbox, client) async throws in
            _ = try await client.wriftai(.GET, sandbox.apiBaseURL + "/user")
            let counters = try await client.wriftai(.GET, sandbox.baseURL + "/sandbox/counters", authorization: nil)
            #expect((try counters.object()["routes"] as? [String: Int])?["GET /v1/user"] == 1)
            let requests = try await client.wriftai(.GET, sandbox.baseURL + "/sandbox/requests", authorization: nil)
            #expect((try JSONSerialization.jsonObject(with: Data(requests.body)) as? [Any])?.count == 1)
            #expect(
                try await client.wriftai(.DELETE, sandbox.baseURL + "/sandbox/requests", authorization: nil).status
                    == .noContent)
            #expect(await sandbox.recorder.all().isEmpty)

            let stream = try await client.wriftai(
                .POST, sandbox.baseURL + "/sandbox/stream", authorization: nil,
                json: ["delays_ms": [100, 3000], "heartbeat_ms": 250])
            #expect(try stream.object()["total_ms"] as? Int == 3100)
            #expect(
                await sandbox.streamPlan()
                    == StreamPlan(delays: [.milliseconds(100), .milliseconds(3000)], heartbeat: .milliseconds(250)))
            let every = try await client.wriftai(
                .POST, sandbox.baseURL + "/sandbox/stream", authorization: nil,
                json: ["events": 6, "interval_ms": 500])
            #expect(try every.object()["delays_ms"] as? [Int] == Array(repeating: 500, count: 6))
            let urls = try await client.wriftai(
                .POST, sandbox.baseURL + "/sandbox/urls", authorization: nil,
                json: ["lifetime_seconds": 60, "part_size": 4096])
            #expect(try urls.object()["part_size"] as? Int == 4096)
            #expect(
                try await client.wriftai(
                    .POST, sandbox.baseURL + "/sandbox/urls", authorization: nil,
                    json: ["lifetime_seconds": 0]
                ).status == .badRequest)
            #expect(
                try await client.wriftai(.DELETE, sandbox.baseURL + "/sandbox/counters", authorization: nil).status
                    == .noContent)
            #expect(await sandbox.counters().routes.isEmpty)
        }
    }

    // MARK: Platforms

    @Test func startPlatformsStartsOnlyTheNamedOnes() async throws {
        let none = try await SandboxServer.startPlatforms(upstreams: [])
        #expect(none.isEmpty)
        let platforms = try await SandboxServer.startPlatforms(upstreams: ["wriftai", "not-a-platform"])
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        do {
            #expect(platforms.map(\.upstream) == ["wriftai"])
            let wriftai = try #require(platforms.first)
            #expect(wriftai.baseURL.hasSuffix("/v1") && wriftai.environment["WRIFTAI_API_BASE_URL"] == wriftai.baseURL)
            #expect(wriftai.unset == ["WRIFTAI_ACCESS_TOKEN_FILE"] && wriftai.example == "/v1/models")
            let token = try #require(wriftai.environment["WRIFTAI_ACCESS_TOKEN"])
            let models = try await client.wriftai(.GET, wriftai.baseURL + "/models", authorization: "Bearer \(token)")
            #expect(models.status == .ok)
        } catch {
            Issue.record(error)
        }
        try await client.shutdown()
        for platform in platforms { try await platform.shutdown() }
    }

    // MARK: The real SDK, straight at the emulator

    /// Runs Tests/compat/wriftai_sdk_check.py against the emulator itself (no gateway) when `WRIFTAI_SDK_PYTHON`
    /// names a Python with `wriftai` installed (Tests/compat/run-wriftai.sh makes one in .build/wriftai-venv).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["WRIFTAI_SDK_PYTHON"] != nil))
    func theUnmodifiedSDKPassesAgainstTheEmulator() async throws {
        let python = ProcessInfo.processInfo.environment["WRIFTAI_SDK_PYTHON"]!
        try await withWriftAI { (sandbox, _) async throws in
            let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("compat/wriftai_sdk_check.py").path
            var environment = ProcessInfo.processInfo.environment
            environment["WRIFTAI_API_BASE_URL"] = sandbox.apiBaseURL
            environment["WRIFTAI_ACCESS_TOKEN"] = Self.token
            environment["SANDBOX_URL"] = sandbox.baseURL
            let (status, text) = try await runToCompletion(
                URL(fileURLWithPath: python), arguments: [script], environment: environment,
                standardError: .combinedWithOutput)
            print(text)
            #expect(status == 0, "\(text)")
            #expect(text.contains(" 0 failed"), "\(text)")
        }
    }

    // MARK: Helpers

    func withWriftAI(partSize: Int? = nil, _ body: (WriftAISandboxServer, HTTPClient) async throws -> Void) async throws
    {
        var options = WriftAISandboxOptions(accessToken: Self.token)
        if let partSize { options.partSize = partSize }
        let sandbox = try await WriftAISandboxServer.start(options)
        let client = HTTPClient(eventLoopGroupProvider: .singleton)
        do {
            try await body(sandbox, client)
        } catch {
            try? await client.shutdown()
            try? await sandbox.shutdown()
            throw error
        }
        try await client.shutdown()
        try await sandbox.shutdown()
    }

    /// The counters once `condition` holds, or after 5 s.
    static func eventually(_ sandbox: WriftAISandboxServer, _ condition: (WriftAISandboxCounters) -> Bool) async
        -> WriftAISandboxCounters
    {
        let deadline = ContinuousClock.now + .seconds(5)
        var counters = await sandbox.counters()
        while !condition(counters) && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
            counters = await sandbox.counters()
        }
        return counters
    }

    static func createPrediction(_ client: HTTPClient, _ sandbox: WriftAISandboxServer) async throws -> String {
        let response = try await client.wriftai(
            .POST, sandbox.apiBaseURL + "/predictions", json: ["model": "sandbox/echo", "input": ["p": "q"]])
        return try #require(try response.object()["id"] as? String)
    }

    struct CreatedUpload {
        var id: String
        var urls: [String]
        var partSize: Int
    }

    static func createUpload(_ client: HTTPClient, _ sandbox: WriftAISandboxServer, size: Int, mimeType: String)
        async throws -> CreatedUpload
    {
        let response = try await client.wriftai(
            .POST, sandbox.apiBaseURL + "/uploads", json: ["size": size, "mime_type": mimeType])
        #expect(response.status == .created, "\(response.text)")
        let object = try response.object()
        return CreatedUpload(
            id: try #require(object["id"] as? String), urls: try #require(object["urls"] as? [String]),
            partSize: try #require(object["part_size"] as? Int))
    }
}

/// An answer read to its end.
struct WriftAIResponse {
    var status: HTTPResponseStatus
    var headers: HTTPHeaders
    var body: [UInt8]

    var text: String { String(decoding: body, as: UTF8.self) }

    func object() throws -> [String: Any] {
        guard let object = try JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else {
            throw WriftAITestError.notAnObject(text)
        }
        return object
    }
}

enum WriftAITestError: Error { case notAnObject(String) }

/// One server-sent event as a client read it, with when its last byte arrived.
struct ReceivedEvent {
    var id: String
    var event: String
    var data: [String: Any]
    var arrival: ContinuousClock.Instant
}

extension HTTPClient {
    /// A request with the suite's bearer token unless told otherwise (nil sends no `Authorization`), optional
    /// headers and a JSON body; reads the whole answer.
    fileprivate func wriftai(
        _ method: HTTPMethod, _ url: String, authorization: String? = "Bearer \(WriftAISandboxTests.token)",
        headers: [String: String] = [:], json: [String: Any]? = nil
    ) async throws -> WriftAIResponse {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let authorization { request.headers.add(name: "Authorization", value: authorization) }
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(Array(try JSONSerialization.data(withJSONObject: json)))
        }
        let response = try await execute(request, timeout: .seconds(60))
        let body = try await response.body.collect(upTo: 64 << 20)
        return WriftAIResponse(status: response.status, headers: response.headers, body: Array(body.readableBytesView))
    }

    /// A PUT to a presigned URL as the SDK makes it: the exact bytes (so `Content-Length` is their count), a
    /// `Content-Type`, and no `Authorization` unless told.
    fileprivate func put(_ url: String, body: [UInt8], contentType: String?, authorization: String? = nil) async throws
        -> WriftAIResponse
    {
        var request = HTTPClientRequest(url: url)
        request.method = .PUT
        if let contentType { request.headers.add(name: "Content-Type", value: contentType) }
        if let authorization { request.headers.add(name: "Authorization", value: authorization) }
        request.body = .bytes(body)
        let response = try await execute(request, timeout: .seconds(30))
        let collected = try await response.body.collect(upTo: 1 << 20)
        return WriftAIResponse(
            status: response.status, headers: response.headers, body: Array(collected.readableBytesView))
    }

    /// A PUT with a chunked body (no `Content-Length`).
    fileprivate func put(_ url: String, chunked body: [UInt8], contentType: String) async throws -> WriftAIResponse {
        var request = HTTPClientRequest(url: url)
        request.method = .PUT
        request.headers.add(name: "Content-Type", value: contentType)
        let chunks = AsyncStream<ByteBuffer> { continuation in
            continuation.yield(ByteBuffer(bytes: body))
            continuation.finish()
        }
        request.body = .stream(chunks, length: .unknown)
        let response = try await execute(request, timeout: .seconds(30))
        let collected = try await response.body.collect(upTo: 1 << 20)
        return WriftAIResponse(
            status: response.status, headers: response.headers, body: Array(collected.readableBytesView))
    }

    /// Reads a server-sent event stream to its end, noting when each event arrived (as the SDK's decoder splits
    /// them: blocks ended by a blank line, `:` lines are comments).
    fileprivate func readEvents(
        _ url: String, method: HTTPMethod = .GET, headers: [String: String] = [:], json: [String: Any]? = nil
    ) async throws -> (contentType: String?, list: [ReceivedEvent], comments: Int) {
        var request = HTTPClientRequest(url: url)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(WriftAISandboxTests.token)")
        request.headers.add(name: "Accept-Encoding", value: "identity")
        for (name, value) in headers { request.headers.add(name: name, value: value) }
        if let json {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(Array(try JSONSerialization.data(withJSONObject: json)))
        }
        let response = try await execute(request, timeout: .seconds(60))
        var pending = ""
        var list: [ReceivedEvent] = []
        var comments = 0
        for try await buffer in response.body {
            pending += String(buffer: buffer)
            while let end = pending.range(of: "\n\n") {
                let block = pending[..<end.lowerBound]
                pending = String(pending[end.upperBound...])
                var id = ""
                var event = ""
                var data = ""
                for line in block.split(separator: "\n") {
                    if line.hasPrefix(":") {
                        comments += 1
                    } else if line.hasPrefix("id: ") {
                        id = String(line.dropFirst(4))
                    } else if line.hasPrefix("event: ") {
                        event = String(line.dropFirst(7))
                    } else if line.hasPrefix("data: ") {
                        data = String(line.dropFirst(6))
                    }
                }
                guard !data.isEmpty else { continue }
                let object = (try? JSONSerialization.jsonObject(with: Data(data.utf8)) as? [String: Any]) ?? [:]
                list.append(ReceivedEvent(id: id, event: event, data: object, arrival: .now))
            }
        }
        return (response.headers["content-type"].first, list, comments)
    }
}
