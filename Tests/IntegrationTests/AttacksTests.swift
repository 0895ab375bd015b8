import CredGate
import Foundation
import NIOCore
import NIOHTTP1
import Sandbox
import Testing

/// Issue 8 through real sockets: requests an attacker would send, each followed by a check that the gateway
/// still serves. Every test here failed (or would have) before its fix.
@Suite struct AttacksTests {
    typealias Fixture = SessionTests.Fixture

    /// The gateway still answers an ordinary request.
    static func expectServing(_ f: Fixture, sourceLocation: SourceLocation = #_sourceLocation) async throws {
        let r = try await send(.GET, f.base + "/credgate/healthz")
        #expect(r.status == .ok, "the gateway no longer serves", sourceLocation: sourceLocation)
        let forwarded = try await send(.GET, f.base + "/api/v1/users/providers-list/?limit=1")
        #expect(forwarded.status == .ok, "a forwarded request failed: \(forwarded.text)", sourceLocation: sourceLocation)
    }

    /// The session is logged in and pooled connections exist, so only the request under test can add bytes at
    /// the platform.
    static func warmUp(_ f: Fixture) async throws {
        _ = try await send(.GET, f.base + "/api/v1/users/provider-documents/?limit=1")
    }

    // MARK: - 1. One request must never crash the process

    /// MultipartKit 4.7.1 traps on a part header name byte of 0x80 or above (an out-of-bounds table lookup): the
    /// whole process died. Every such byte, and every other byte a header name may not hold, is refused first.
    @Test(arguments: [UInt8(0x80), 0xC3, 0xFF, UInt8(ascii: " "), UInt8(ascii: "("), UInt8(ascii: "@"), 0x7F, 0x00])
    func aPartHeaderNameWithANonTokenByteIsRefusedNotACrash(byte: UInt8) async throws {
        try await SessionTests.withGateway { f in
            try await Self.warmUp(f)
            try await FilesTests.expectNothingReachesPlatform(f) {
                var body = Array("--B\r\nX".utf8)
                body.append(byte)
                body += Array(": 1\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.pdf\"\r\n\r\n%PDF-1.7 hello\r\n--B--\r\n".utf8)
                for chunked in [false, true] {
                    let r = try await sendBytes(.POST, f.base + FilesTests.uploadPath,
                                                headers: ["content-type": "multipart/form-data; boundary=B"], body: body, chunked: chunked)
                    #expect(r.status == .badRequest, "\(r.status): \(r.text)")
                    #expect(FilesTests.problemCode(r) == "upload-malformed")
                    #expect(r.headers.first(name: "content-type") == "application/problem+json")
                    #expect(r.text.contains("header name"), "\(r.text)")
                }
            }
            try await Self.expectServing(f)
        }
    }

    /// The same bytes in a header *value* (a UTF-8 file name) are fine.
    @Test func aUTF8FileNameInAPartHeaderValueIsAccepted() async throws {
        try await SessionTests.withGateway { f in
            var body = MultipartBody()
            body.file("Zulassung-Ärztin.pdf", Samples.pdf(2_000), contentType: "application/pdf")
            body.close()
            let r = try await FilesTests.upload(f, body)
            #expect(r.status == .created, "\(r.text)")
            try await Self.expectServing(f)
        }
    }
}
