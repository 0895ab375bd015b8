import FuzzSupport

@testable import CredGate

/// Fuzz target: `S3URI(parsing:)`, which reads the `s3_url` a client sends to the presign route (and to
/// `GET /credgate/v1/files/download?s3_url=`) and names the presign cache's key.
///
/// Input: the whole input is the URI (invalid UTF-8 replaced, as a JSON decoder would refuse or a query
/// decoder would replace it). Besides traps, it checks that what parses is what S3 allows (bucket 3 to 63
/// characters of `[a-z0-9.-]`, key 1 to 1024 bytes), that it prints back exactly as written (the cache key
/// must be what the user sees) and parses again to itself, and that every refusal has a sentence to show.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzS3URI(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var input = FuzzInput(data, size)
    let text = String(fuzzBytes: input.rest())
    do {
        let uri = try S3URI(parsing: text)
        fuzzExpect(uri.description == text, "\(String(reflecting: text)) prints back as \(uri.description)")
        fuzzExpect((3...63).contains(uri.bucket.utf8.count), "bucket length \(uri.bucket.utf8.count)")
        fuzzExpect(uri.bucket.utf8.allSatisfy { bucketBytes.contains($0) }, "bucket \(uri.bucket) has a bad byte")
        fuzzExpect(
            !uri.key.isEmpty && uri.key.utf8.count <= S3URI.maximumKeyBytes, "key of \(uri.key.utf8.count) bytes")
        fuzzExpect(
            !uri.key.unicodeScalars.contains {
                $0.properties.isWhitespace || $0.properties.generalCategory == .control
            },
            "a key with whitespace or a control character passed")
        fuzzExpect((try? S3URI(parsing: uri.description)) == uri, "the printed URI does not parse to itself")
        fuzzExpect(S3URI(validating: text) == uri, "init(validating:) disagrees with init(parsing:)")
    } catch {
        fuzzExpect(!error.description.isEmpty, "a refusal without a sentence")
        fuzzExpect(S3URI(validating: text) == nil, "init(validating:) accepted what init(parsing:) refused")
    }
    return 0
}

let bucketBytes = Set("abcdefghijklmnopqrstuvwxyz0123456789.-".utf8)
