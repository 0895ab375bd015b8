import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore
import NIOHTTP1

/// Hand-built multipart bodies for upload tests (including broken ones, which a library would refuse to make).
struct MultipartBody {
    var boundary = "----credgate-test-\(UUID().uuidString)"
    var bytes: [UInt8] = []

    mutating func field(_ name: String, _ value: String) {
        append("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n")
    }

    mutating func file(
        _ filename: String, _ content: [UInt8], contentType: String? = "application/octet-stream",
        field: String = "file"
    ) {
        var head = "--\(boundary)\r\nContent-Disposition: form-data; name=\"\(field)\"; filename=\"\(filename)\"\r\n"
        if let contentType { head += "Content-Type: \(contentType)\r\n" }
        append(head + "\r\n")
        bytes += content
        append("\r\n")
    }

    mutating func close() { append("--\(boundary)--\r\n") }

    private mutating func append(_ s: String) { bytes += Array(s.utf8) }

    var contentType: String { "multipart/form-data; boundary=\(boundary)" }
}

enum Samples {
    /// A small PDF-looking file (magic bytes and some content).
    static func pdf(_ size: Int = 4096) -> [UInt8] {
        var bytes = Array("%PDF-1.7\n".utf8)
        var x: UInt32 = 2_463_534_242
        while bytes.count < size {
            x ^= x << 13
            x ^= x >> 17
            x ^= x << 5
            bytes.append(UInt8(truncatingIfNeeded: x))
        }
        return bytes
    }

    static let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A] + Array(repeating: 7, count: 200)
    static let docx: [UInt8] = [0x50, 0x4B, 0x03, 0x04] + Array(repeating: 1, count: 200)

    static func sha256(_ bytes: [UInt8]) -> String {
        SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined()
    }
}

/// Sends raw bytes (optionally in chunks with no Content-Length, so the request is chunked).
func sendBytes(_ method: HTTPMethod, _ url: String, headers: HTTPHeaders = [:], body: [UInt8], chunked: Bool = false)
    async throws -> SimpleResponse
{
    var request = HTTPClientRequest(url: url)
    request.method = method
    request.headers = headers
    if chunked {
        let chunks = stride(from: 0, to: body.count, by: 64 * 1024).map {
            ByteBuffer(bytes: body[$0..<min($0 + 64 * 1024, body.count)])
        }
        let stream = AsyncStream<ByteBuffer> { continuation in
            for chunk in chunks { continuation.yield(chunk) }
            continuation.finish()
        }
        request.body = .stream(stream, length: .unknown)
    } else {
        request.body = .bytes(ByteBuffer(bytes: body))
    }
    let response = try await httpClient.execute(request, timeout: .seconds(120))
    let bytes = try await response.body.collect(upTo: 64 * 1024 * 1024)
    return SimpleResponse(status: response.status, headers: response.headers, body: bytes)
}

/// Runs a command (curl) and returns its exit status and standard output (standard error is discarded). The wait is
/// asynchronous: a blocked thread of the cooperative pool (2 on a 2-core machine) would starve every other test,
/// timing-sensitive session tests first.
func runTool(_ arguments: [String]) async throws -> (status: Int32, output: String) {
    try await runToCompletion(
        URL(fileURLWithPath: "/usr/bin/env"), arguments: arguments, standardError: .discarded)
}
