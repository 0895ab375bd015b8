import Foundation
import FuzzSupport
import NIOCore
import NIOEmbedded
import NIOHTTP1

@testable import CredGate

/// Fuzz target: the SSN route's body transform, `SSNEncryptionFilter.decodeBody`, on client JSON (parsed with
/// Foundation's `JSONSerialization`), and `SSNCipher` (normalising, and decrypting ciphertext an SDK made with a
/// credgate placeholder token).
///
/// Input layout:
/// ```
/// byte 0     flags: bit 0 the client sent one of credgate's placeholder tokens;
///            bit 1 the body is {"ssn": <the rest encrypted with that placeholder>} instead of the rest itself
/// rest       the request body (or, with bit 1, the plaintext inside the client's ciphertext)
/// ```
/// Besides traps, it checks that a body the filter rewrote is a JSON object whose `ssn` decrypts, under the
/// token injected on this request, to nine digits, and that the cipher round-trips.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSSN(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let flags = input.byte()
    let rest = input.rest()
    let text = String(fuzzBytes: rest)

    if let digits = SSNCipher.normalize(text) {
        fuzzExpect(
            digits.utf8.count == 9 && digits.utf8.allSatisfy { $0 >= 0x30 && $0 <= 0x39 }, "normalize kept \(digits)")
        let encrypted = try! SSNCipher.encrypt(digits, token: sessionToken)
        fuzzExpect(SSNCipher.decrypt(encrypted, token: sessionToken) == digits, "the cipher does not round-trip")
    }
    _ = SSNCipher.decrypt(text, token: sessionToken)

    var body: ByteBuffer
    if flags & 2 != 0 {
        let ciphertext = try! SSNCipher.encrypt(text, token: placeholder)
        body = ByteBuffer(string: #"{"ssn":"\#(ciphertext)"}"#)
    } else {
        body = ByteBuffer(bytes: rest)
    }
    let original = body
    var head = HTTPRequestHead(
        version: .http1_1, method: .PATCH, uri: "/api/v1/users/retrieve-update-provider-ssn-sym-encrypted/1/",
        headers: ["authorization": "Bearer \(sessionToken)", "content-type": "application/json"])
    let clientHead = HTTPRequestHead(
        version: .http1_1, method: .PATCH, uri: head.uri,
        headers: flags & 1 != 0 ? ["authorization": "Bearer \(placeholder)"] : [:])
    let context = FilterContext(requestID: "fuzz", routeName: "ssn", eventLoop: loop, clientHead: clientHead)
    // A refusal is a local answer; only a body the filter rewrote has more to check.
    if case .proceed = filter.decodeBody(&body, head: &head, context: context), body != original {
        let object = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any]
        let ssn = object?["ssn"] as? String
        let plain = ssn.flatMap { SSNCipher.decrypt($0, token: sessionToken) }
        fuzzExpect(
            plain.map { SSNCipher.normalize($0) == $0 } == true,
            "the rewritten body's ssn is not nine digits under the session token")
    }
    return 0
}

let placeholders = PlaceholderTokens()
let placeholder = placeholders.mint(type: "access")
let sessionToken = "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE4OTM0NTYwMDB9.c2Vzc2lvbg"
let filter = SSNEncryptionFilter(
    session: JWTSessionConfig(
        upstream: "assured",
        login: .init(path: "/api/v1/users/login/", body: Secret("{}"), accessTokenPath: "access", refreshTokenPath: nil)
    ),
    placeholders: placeholders)
let loop = EmbeddedEventLoop()
