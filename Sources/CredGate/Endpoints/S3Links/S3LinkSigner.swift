import Foundation

/// Turns a checked ``S3LinkRequest`` into a presigned URL (through ``AWSSigV4/presign(_:credentials:at:)``) and
/// the JSON answer `{"url", "method", "key", "expires_at", "headers"}`. Pure: the clock comes in as a `Date`.
struct S3LinkSigner: Sendable {
    let credentials: AWSSigV4.Credentials
    let endpoint: AWSSigV4.S3Endpoint
    let config: S3Config

    /// Signs `request` at `date`. Throws only for what the loader already checked (an address that cannot be
    /// built, a lifetime out of range).
    func sign(_ request: S3LinkRequest, at date: Date) throws(AWSSigV4.SigningError) -> AWSSigV4.PresignedURL {
        let address = try AWSSigV4.S3ObjectAddress(
            endpoint: endpoint, bucket: config.bucket, key: request.key, style: config.addressing)
        var headers: [AWSSigV4.HeaderField] = []
        var query: [AWSSigV4.QueryItem] = []
        switch request.operation {
        case .upload:
            if let type = request.contentType { headers.append(.init("content-type", type)) }
            if let encoding = request.contentEncoding { headers.append(.init("content-encoding", encoding)) }
        case .download:
            if let name = request.downloadFilename {
                query.append(.init("response-content-disposition", Self.attachment(name)))
            }
            if let type = request.contentType { query.append(.init("response-content-type", type)) }
        case .remove:
            break
        }
        return try AWSSigV4.presign(
            .init(
                method: request.operation.method, address: address, expires: request.expiresIn, signedHeaders: headers,
                query: query),
            credentials: credentials, at: date)
    }

    /// `attachment; filename="name"` for a plain ASCII name; RFC 6266's `filename*=UTF-8''…` form otherwise.
    static func attachment(_ name: String) -> String {
        let plain = name.unicodeScalars.allSatisfy { $0.value >= 0x20 && $0.value < 0x7F && $0 != "\"" && $0 != "\\" }
        return plain ? "attachment; filename=\"\(name)\"" : "attachment; filename*=UTF-8''" + AWSSigV4.uriEncode(name)
    }

    /// The answer's JSON. `headers` are the ones the user must send exactly (an upload's `Content-Type`).
    static func answer(
        url: String, method: String, key: String, expiresAt: Date, headers: [AWSSigV4.HeaderField]
    ) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        let headerMembers = headers.map { field in
            JSONString.quote(canonicalName(field.name)) + ":" + JSONString.quote(field.value)
        }.joined(separator: ",")
        return
            "{\"url\":\(JSONString.quote(url)),\"method\":\(JSONString.quote(method)),\"key\":\(JSONString.quote(key)),"
            + "\"expires_at\":\(JSONString.quote(formatter.string(from: expiresAt))),\"headers\":{\(headerMembers)}}"
    }

    /// `content-type` → `Content-Type`, as people write it in curl.
    static func canonicalName(_ name: String) -> String {
        name.split(separator: "-", omittingEmptySubsequences: false).map { $0.prefix(1).uppercased() + $0.dropFirst() }
            .joined(separator: "-")
    }
}
