import Foundation

/// What `POST /credgate/v1/s3/links` asks for, checked against the listener's `endpoints.s3` before anything is
/// signed. Every refusal is a sentence for the person who sent it (a 422 problem).
///
/// Body: `{"operation": "download"|"upload"|"remove", "key"` or `"filename", "expires_in"` (seconds) or
/// `"expire_minutes", "content_type", "content_encoding", "download_filename"}`. Unknown members are refused, so a
/// typo is not silently ignored.
struct S3LinkRequest: Sendable, Hashable {
    enum Operation: String, Sendable, Hashable, CaseIterable {
        case download, upload, remove

        /// The HTTP method the link is signed for.
        var method: String {
            switch self {
            case .download: "GET"
            case .upload: "PUT"
            case .remove: "DELETE"
            }
        }
    }

    var operation: Operation
    /// The object key (with the configured prefix).
    var key: String
    /// Seconds from now.
    var expiresIn: Int
    /// Upload: the signed `Content-Type` (default `application/octet-stream`); download: `response-content-type`.
    var contentType: String?
    /// Upload only: the signed `Content-Encoding`.
    var contentEncoding: String?
    /// Download only: `response-content-disposition: attachment; filename=...`.
    var downloadFilename: String?

    static let members: Set<String> = [
        "operation", "key", "filename", "expires_in", "expire_minutes", "content_type", "content_encoding",
        "download_filename",
    ]

    init(
        operation: Operation, key: String, expiresIn: Int, contentType: String? = nil,
        contentEncoding: String? = nil, downloadFilename: String? = nil
    ) {
        self.operation = operation
        self.key = key
        self.expiresIn = expiresIn
        self.contentType = contentType
        self.contentEncoding = contentEncoding
        self.downloadFilename = downloadFilename
    }

    /// Why a request was refused (the problem's detail).
    struct Problem: Error, Sendable, Hashable, CustomStringConvertible {
        let description: String
        init(_ text: String) { description = text }
    }

    /// Parses a JSON body. `newName` makes the key for a `filename` (a UUID keeping the extension; injected for tests).
    static func parse(
        json body: [UInt8], config: S3Config,
        newName: (String) -> String? = { S3ObjectName.newKey(for: $0, prefix: "") }
    )
        throws(Problem) -> S3LinkRequest
    {
        guard let object = try? JSONDecoder().decode([String: Member].self, from: Data(body)) else {
            throw Problem(
                "The body must be a JSON object such as {\"operation\": \"download\", \"key\": \"reports/a.pdf\"}.")
        }
        if let unknown = object.keys.sorted().first(where: { !members.contains($0) }) {
            throw Problem("Unknown member \"\(unknown)\" (expected: \(members.sorted().joined(separator: ", "))).")
        }
        func string(_ name: String) throws(Problem) -> String? {
            switch object[name] {
            case nil, .null?: return nil
            case .string(let text)?: return text
            default: throw Problem("\"\(name)\" must be a string.")
            }
        }
        func integer(_ name: String) throws(Problem) -> Int? {
            switch object[name] {
            case nil, .null?: return nil
            case .integer(let value)?: return value
            default: throw Problem("\"\(name)\" must be a whole number.")
            }
        }
        guard let operationText = try string("operation") else {
            throw Problem("\"operation\" is required: \"download\", \"upload\" or \"remove\".")
        }
        guard let operation = Operation(rawValue: operationText) else {
            throw Problem("\"operation\" must be \"download\", \"upload\" or \"remove\".")
        }
        let key: String
        switch (try string("key"), try string("filename")) {
        case (nil, nil): throw Problem("Name the object with \"key\", or with \"filename\" for a new upload.")
        case (.some, .some): throw Problem("Give \"key\" or \"filename\", not both.")
        case (let k?, nil): key = k
        case (nil, let name?):
            guard operation == .upload else {
                throw Problem(
                    "\"filename\" makes a new object name and is only for uploads; name an existing object with \"key\"."
                )
            }
            guard let made = newName(name) else {
                throw Problem(
                    "\"filename\" has nothing left once sanitised (path separators, control characters and leading dots are removed)."
                )
            }
            key = config.keyPrefix + made
        }
        try checkKey(key, config: config)
        let expiresIn: Int
        switch (try integer("expires_in"), try integer("expire_minutes")) {
        case (.some, .some): throw Problem("Give \"expires_in\" or \"expire_minutes\", not both.")
        case (let seconds?, nil): expiresIn = seconds
        case (nil, let minutes?): expiresIn = minutes.multipliedReportingOverflow(by: 60).overflow ? -1 : minutes * 60
        case (nil, nil): expiresIn = config.defaultLifetime
        }
        guard (1...config.maximumLifetime).contains(expiresIn) else {
            throw Problem(
                "A link must expire 1 to \(config.maximumLifetime) seconds from now (an expiry in the past, zero or too far ahead is refused)."
            )
        }
        var request = S3LinkRequest(operation: operation, key: key, expiresIn: expiresIn)
        request.contentType = try headerValue(string("content_type"), "content_type")
        request.contentEncoding = try headerValue(string("content_encoding"), "content_encoding")
        if request.contentEncoding != nil, operation != .upload {
            throw Problem("\"content_encoding\" is only for uploads.")
        }
        if let name = try string("download_filename") {
            guard operation == .download else { throw Problem("\"download_filename\" is only for downloads.") }
            guard let clean = S3ObjectName.sanitised(name) else {
                throw Problem("\"download_filename\" has nothing left once sanitised.")
            }
            request.downloadFilename = clean
        }
        if request.contentType != nil, operation == .remove {
            throw Problem("\"content_type\" is for uploads and downloads.")
        }
        if operation == .upload, request.contentType == nil { request.contentType = "application/octet-stream" }
        return request
    }

    /// A key links may name: 1 to 1024 bytes, no control characters, no empty, `.` or `..` segments (some
    /// S3-compatible stores normalise paths, which would let a key climb out of the prefix), under the prefix.
    static func checkKey(_ key: String, config: S3Config) throws(Problem) {
        guard !key.isEmpty, key.utf8.count <= S3URI.maximumKeyBytes else {
            throw Problem("\"key\" must be 1 to \(S3URI.maximumKeyBytes) bytes.")
        }
        guard !key.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw Problem("\"key\" contains a control character.")
        }
        let segments = key.split(separator: "/", omittingEmptySubsequences: false)
        guard !segments.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." }) else {
            throw Problem("\"key\" may not start or end with '/', hold '//', or have '.' or '..' segments.")
        }
        guard key.hasPrefix(config.keyPrefix) else {
            throw Problem("\"key\" must start with \"\(config.keyPrefix)\" (endpoints.s3.key_prefix).")
        }
    }

    /// One member's value, as far as the checks need to know it.
    enum Member: Decodable {
        case null
        case bool(Bool)
        case integer(Int)
        case number(Double)
        case string(String)
        case other

        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if c.decodeNil() {
                self = .null
            } else if let b = try? c.decode(Bool.self) {
                self = .bool(b)
            } else if let i = try? c.decode(Int.self) {
                self = .integer(i)
            } else if let d = try? c.decode(Double.self) {
                self = .number(d)
            } else if let s = try? c.decode(String.self) {
                self = .string(s)
            } else {
                self = .other
            }
        }
    }

    private static func headerValue(_ value: String?, _ name: String) throws(Problem) -> String? {
        guard let value else { return nil }
        guard !value.isEmpty, value.utf8.count <= 256,
            value.unicodeScalars.allSatisfy({ $0.value >= 0x20 && $0.value < 0x7F })
        else {
            throw Problem("\"\(name)\" must be 1 to 256 printable ASCII characters.")
        }
        return value
    }
}
