import Crypto
import Foundation
import Hummingbird

extension WriftAIResponder {
    /// `POST /v1/uploads` `{"size": <exact bytes>, "mime_type": "<type>"}`: 201 `{"id", "urls", "part_size"}`, one
    /// presigned PUT URL per part (`/sandbox-s3/<bucket>/uploads/<id>?partNumber=N&uploadId=<id>&X-Amz-...`), each
    /// signed for its exact `Content-Length` and the `Content-Type` given here. `part_size` is the whole size when
    /// there is a single part.
    func createUpload(_ request: Request, context: Context, recorded: inout RecordedRequest) async throws -> Response {
        let object: [String: RequestJSON]
        switch try await Self.readObject(request, recorded: &recorded) {
        case .success(let value): object = value
        case .failure(let error): return error.response
        }
        guard let size = Self.wholeNumber(object["size"]) else {
            return WriftAIProblem.invalid("size", "the exact size in bytes (a whole number) is required")
        }
        guard case .string(let mimeType)? = object["mime_type"], Self.isMediaType(mimeType) else {
            return WriftAIProblem.invalid("mime_type", "a MIME type (type/subtype) is required")
        }
        guard size <= state.maxUploadBytes else {
            return WriftAIProblem.response(.contentTooLarge, "size: at most \(state.maxUploadBytes) bytes")
        }
        let settings = await state.settings.values
        let id = UploadStore.newID()
        let upload = SandboxUpload(
            id: id, size: size, mimeType: mimeType, partSize: settings.partSize, key: "uploads/\(id)")
        await state.uploads.add(upload)
        let now = Int(Date().timeIntervalSince1970)
        let origin = storageOrigin(context)
        let urls: [JSONValue] = (1...upload.partCount).map { number in
            .string(
                state.presigner.url(
                    origin: origin, bucket: state.bucket, key: upload.key, form: .v4, lifetime: settings.urlLifetime,
                    now: now,
                    method: "PUT", subresources: [("partNumber", String(number)), ("uploadId", id)],
                    signedHeaders: [
                        ("content-length", String(upload.length(ofPart: number))), ("content-type", mimeType),
                    ]
                ))
        }
        return JSONResponses.json(
            .created,
            .object([
                ("id", .string(id)),
                ("urls", .array(urls)),
                ("part_size", .int(upload.partCount == 1 ? size : upload.partSize)),
            ]))
    }

    /// `POST /v1/uploads/{id}/complete` `{"etags": [...]}` (every part's ETag, in part order): 200
    /// `{"download_url"}`, a signed GET URL of the joined file. The same completion again gets a fresh URL;
    /// missing parts, a wrong count or a wrong ETag get 400 and leave the upload open.
    func completeUpload(_ request: Request, id: String, context: Context, recorded: inout RecordedRequest) async throws
        -> Response
    {
        let object: [String: RequestJSON]
        switch try await Self.readObject(request, recorded: &recorded) {
        case .success(let value): object = value
        case .failure(let error): return error.response
        }
        guard case .array(let items)? = object["etags"] else {
            return WriftAIProblem.invalid("etags", "a list of strings is required")
        }
        var etags: [String] = []
        for item in items {
            guard case .string(let etag) = item else {
                return WriftAIProblem.invalid("etags", "a list of strings is required")
            }
            etags.append(etag)
        }
        let upload: SandboxUpload
        switch await state.uploads.complete(uploadID: id, etags: etags) {
        case .notFound:
            return WriftAIProblem.notFound("Upload not found.")
        case .invalid(let message):
            return WriftAIProblem.response(.badRequest, "Cannot complete the upload: \(message).")
        case .alreadyCompleted(let done):
            upload = done
        case .completed(let done, let bytes):
            upload = done
            let now = Int(Date().timeIntervalSince1970)
            await state.objects.put(
                bucket: state.bucket, key: done.key,
                StoredObject(
                    bytes: bytes, contentType: done.mimeType, sha256: Self.sha256(bytes),
                    etag: "\"\(Self.sha256(bytes).prefix(32))-\(done.partCount)\"", lastModified: now
                ))
            await state.counters.count(\.completes)
        }
        return JSONResponses.json(
            .ok, .object([("download_url", .string(await downloadURL(key: upload.key, context: context)))]))
    }

    /// `POST /v1/files/urls` `{"name", "size", "resource": "prediction", "mime_type"}` (SDK 0.28's one step):
    /// 200 `{"upload_url", "download_url"}`. The upload URL takes one PUT of exactly `size` bytes with that
    /// `Content-Type`; the download URL serves the file once it is there (404 before).
    func createFileURLs(_ request: Request, context: Context, recorded: inout RecordedRequest) async throws -> Response
    {
        let object: [String: RequestJSON]
        switch try await Self.readObject(request, recorded: &recorded) {
        case .success(let value): object = value
        case .failure(let error): return error.response
        }
        guard case .string(let name)? = object["name"], !name.trimmingCharacters(in: .whitespaces).isEmpty else {
            return WriftAIProblem.invalid("name", "a file name is required")
        }
        guard let size = Self.wholeNumber(object["size"]) else {
            return WriftAIProblem.invalid("size", "the exact size in bytes (a whole number) is required")
        }
        guard case .string("prediction")? = object["resource"] else {
            return WriftAIProblem.invalid("resource", "must be \"prediction\"")
        }
        guard case .string(let mimeType)? = object["mime_type"], Self.isMediaType(mimeType) else {
            return WriftAIProblem.invalid("mime_type", "a MIME type (type/subtype) is required")
        }
        guard size <= state.maxUploadBytes else {
            return WriftAIProblem.response(.contentTooLarge, "size: at most \(state.maxUploadBytes) bytes")
        }
        let key = "files/" + UUID().uuidString.lowercased() + Self.fileExtension(name)
        await state.uploads.addSingle(SingleUpload(key: key, size: size, mimeType: mimeType))
        let lifetime = await state.settings.values.urlLifetime
        let uploadURL = state.presigner.url(
            origin: storageOrigin(context), bucket: state.bucket, key: key, form: .v4, lifetime: lifetime,
            now: Int(Date().timeIntervalSince1970), method: "PUT",
            signedHeaders: [("content-length", String(size)), ("content-type", mimeType)]
        )
        return JSONResponses.json(
            .ok,
            .object([
                ("upload_url", .string(uploadURL)),
                ("download_url", .string(await downloadURL(key: key, context: context))),
            ]))
    }

    /// A signed GET URL of a stored file, with the current lifetime.
    func downloadURL(key: String, context: Context) async -> String {
        let lifetime = await state.settings.values.urlLifetime
        return state.presigner.url(
            origin: storageOrigin(context), bucket: state.bucket, key: key, form: .v4,
            lifetime: lifetime, now: Int(Date().timeIntervalSince1970))
    }

    /// `type/subtype`, each a non-empty token, parameters allowed.
    static func isMediaType(_ text: String) -> Bool {
        let essence = text.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false)[0]
        let parts = essence.split(separator: "/", omittingEmptySubsequences: false)
        return parts.count == 2 && parts.allSatisfy { !$0.isEmpty && !$0.contains(" ") }
    }

    /// The extension of the last path component of `name` (`.pdf`), empty when none; only letters and digits.
    static func fileExtension(_ name: String) -> String {
        let base = name.split(whereSeparator: { $0 == "/" || $0 == "\\" }).last.map(String.init) ?? ""
        guard let dot = base.lastIndex(of: "."), dot != base.startIndex else { return "" }
        let ext = base[base.index(after: dot)...]
        guard !ext.isEmpty, ext.count <= 16, ext.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber) }) else {
            return ""
        }
        return "." + ext
    }

    static func sha256(_ bytes: ByteBuffer) -> String {
        var hasher = SHA256()
        bytes.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
        return hasher.finalize().hexString
    }
}
