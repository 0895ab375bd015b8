import Crypto
import Hummingbird

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The platform's answer to an upload (a FileRecord), for one stored object.
struct FileRecord {
    var id: String
    var name: String
    var bucket: String
    var key: String
    var originalFilename: String
    var contentType: String?
    var size: Int
    var sha256: String
    var etag: String
    var createdAt: String

    var s3URI: String { "s3://\(bucket)/\(key)" }

    /// `origin` is where the sandbox's `/sandbox-s3/` is reached; `file` is the object's plain (unsigned) URL there,
    /// as the platform's `file` is the bucket's https URL.
    func json(origin: String) -> JSONValue {
        .object([
            ("id", .string(id)),
            ("file", .string(origin + Presigner.path(bucket: bucket, key: key))),
            ("file_url", .string(s3URI)),
            ("name", .string(name)),
            ("created_at", .string(createdAt)),
            // A subset of the platform's ~26 optional keys: the ones a client reads, and the digest tests check.
            (
                "storage_metadata",
                .object([
                    ("bucket_name", .string(bucket)),
                    ("object_key", .string(key)),
                    ("region", .string(Presigner.region)),
                    ("signature_version", "s3v4"),
                    ("content_type", .optional(contentType)),
                    ("file_size_bytes", .int(size)),
                    ("original_filename", .string(originalFilename)),
                    ("s3_uri", .string(s3URI)),
                    ("sha256", .string(sha256)),
                    ("etag", .string(etag)),
                    ("uploaded_at", .string(createdAt)),
                ])
            ),
            ("uploaded_file_uri", .string(s3URI)),
        ])
    }
}

extension SandboxResponder {
    /// `POST /api/v1/files/handle/` (API key and JWT already checked): a `multipart/form-data` body with a file
    /// part `file` and an optional text field `name`. The file is streamed through SHA-256 and MD5, stored under
    /// `<id>-<name>` in the sandbox bucket, and described in a 201 FileRecord. Without `name`, the name is a UUID
    /// plus the original extension, as the SDK makes it.
    ///
    /// Errors as DRF words them: 400 `{"file": ["No file was submitted."]}` without a file part, 400 `detail` on a
    /// broken multipart body, 413 past ``SandboxOptions/maxUploadBytes``.
    ///
    /// A body that is not `multipart/form-data` at all is answered with the echo, as this route did before it
    /// stored files (the platform would answer 415): streaming tests push raw bytes through it.
    func fileHandle(
        _ request: Request, method: HTTPRequest.Method, target: RequestTarget, context: Context,
        recorded: inout RecordedRequest
    ) async throws -> Response {
        guard method == .post else {
            return JSONResponses.methodNotAllowed(request.method, allowed: ["POST", "OPTIONS"])
        }
        guard let boundary = request.headers[.contentType].flatMap(MultipartUpload.boundary(ofContentType:)) else {
            return try await echo(request, target: target, recorded: &recorded)
        }
        guard let boundary else {
            return JSONResponses.detail(.badRequest, "Multipart form parse error - Invalid boundary in multipart: None")
        }

        let form = MultipartUpload(boundary: boundary)
        var hasher = SHA256()
        var total = 0
        var refusal: Response?
        do {
            for try await buffer in request.body {
                total += buffer.readableBytes
                guard total <= maxUploadBytes else {
                    refusal = JSONResponses.detail(.contentTooLarge, "Request body too large.")
                    break
                }
                buffer.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
                do throws(MultipartUpload.Failure) {
                    try form.feed(buffer)
                } catch {
                    refusal = JSONResponses.detail(.badRequest, error.message)
                    break
                }
            }
        } catch {
            recorded.bodyBytes = total
            throw error
        }
        recorded.bodyBytes = total
        // The rest of a refused body is left unread (Hummingbird drains it): no digest, as for any unread body.
        if let refusal { return refusal }
        recorded.bodySHA256 = hasher.finalize().hexString
        do throws(MultipartUpload.Failure) {
            try form.finish()
        } catch {
            return JSONResponses.detail(.badRequest, error.message)
        }

        var errors: [(String, JSONValue)] = []
        let file = form.files["file"]
        if file == nil {
            errors.append(
                (
                    "file",
                    .array([
                        form.texts["file"] == nil
                            ? "No file was submitted."
                            : "The submitted data was not a file. Check the encoding type on the form."
                    ])
                ))
        } else if file?.bytes.readableBytes == 0 {
            errors.append(("file", .array(["The submitted file is empty."])))
        }
        let givenName = form.texts["name"]
        if let givenName, givenName.trimmingASCIIWhitespace().isEmpty {
            errors.append(("name", .array(["This field may not be blank."])))
        }
        guard errors.isEmpty, let file else { return JSONResponses.json(.badRequest, .object(errors)) }

        let id = UUID().uuidString.lowercased()
        let name = givenName ?? UUID().uuidString.lowercased() + Self.fileExtension(file.filename)
        let key = "\(id)-\(name)"
        let now = Date()
        await state.objects.put(
            bucket: state.bucket, key: key,
            StoredObject(
                bytes: file.bytes, contentType: file.contentType, sha256: file.sha256, etag: "\"\(file.md5)\"",
                lastModified: Int(now.timeIntervalSince1970)
            ))
        let record = FileRecord(
            id: id, name: name, bucket: state.bucket, key: key, originalFilename: file.filename,
            contentType: file.contentType,
            size: file.bytes.readableBytes, sha256: file.sha256, etag: "\"\(file.md5)\"",
            createdAt: now.formatted(.iso8601)
        )
        return JSONResponses.json(.created, record.json(origin: origin(request, context: context)))
    }

    /// Python's `os.path.splitext(name)[1]`: from the last dot, unless the name only starts with dots.
    static func fileExtension(_ filename: String) -> String {
        guard let dot = filename.lastIndex(of: "."), filename[..<dot].contains(where: { $0 != "." }) else { return "" }
        return String(filename[dot...])
    }
}
