import Hummingbird

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

extension SandboxResponder {
    /// `POST /api/v1/files/presign-s3-url/presign_s3_url/` `{"s3_url": "s3://bucket/key", "presigned_url": ""}`
    /// (API key and JWT already checked): 200 `{"presigned_url": "<sandbox origin>/sandbox-s3/bucket/key?..."}`.
    ///
    /// Like S3 presigning, nothing checks that the object exists: the URL is made for any bucket and key, and
    /// fetching it says whether there is something there. The extra `presigned_url` the SDK sends is ignored.
    /// Test controls may delay every answer and fail the next ones (`POST /sandbox/presign`, `/sandbox/fail-presigns`).
    func presign(_ request: Request, method: HTTPRequest.Method, context: Context, recorded: inout RecordedRequest)
        async throws -> Response
    {
        guard method == .post else {
            return JSONResponses.methodNotAllowed(request.method, allowed: ["POST", "OPTIONS"])
        }
        let body = try await ReadBody.read(request, recorded: &recorded)
        let settings = await state.presign.values
        if settings.delay > .zero {
            try await Task.sleep(for: settings.delay)
        }
        if let status = await state.presignFailures.take() {
            return InjectedFailures.response(status: status, route: "presign")
        }
        let field = body.jsonObject().flatMap { FieldValidation.requiredStrings(["s3_url"], in: $0) }
        guard case .success(let fields) = field else { return field.failureResponse }
        guard let (bucket, key) = Self.s3Location(fields["s3_url"]!) else {
            // Inferred wording: the platform's answer to a URL that is not s3:// is not documented.
            return JSONResponses.fieldError(.badRequest, field: "s3_url", "Enter a valid S3 URL (s3://bucket/key).")
        }
        let url = state.presigner.url(
            origin: origin(request, context: context), bucket: bucket, key: key,
            form: settings.form, lifetime: settings.lifetime, now: Int(Date().timeIntervalSince1970)
        )
        return JSONResponses.json(.ok, .object([("presigned_url", .string(url))]))
    }

    /// Bucket and key of `s3://bucket/key` (the key taken as it is written, not decoded); nil for anything else.
    static func s3Location(_ url: String) -> (bucket: String, key: String)? {
        guard url.hasPrefix("s3://") else { return nil }
        let rest = url.dropFirst("s3://".count)
        guard let slash = rest.firstIndex(of: "/") else { return nil }
        let bucket = String(rest[..<slash])
        let key = String(rest[rest.index(after: slash)...])
        guard !bucket.isEmpty, !key.isEmpty else { return nil }
        return (bucket, key)
    }
}
