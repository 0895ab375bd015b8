import Crypto
import Hummingbird

/// A three-step upload (`POST /v1/uploads`) in progress: what its parts must be, and the parts stored so far.
struct SandboxUpload: Sendable {
    let id: String
    let size: Int
    let mimeType: String
    let partSize: Int
    /// Object key the completed file is stored under.
    let key: String
    /// Part number (1-based) to its bytes and ETag.
    var parts: [Int: (bytes: ByteBuffer, etag: String)] = [:]
    /// Set once completed (the ETags it was completed with, to accept the same completion again).
    var completedWith: [String]?

    var partCount: Int { size == 0 ? 1 : (size + partSize - 1) / partSize }

    /// Exact length of part `number` (1-based): `partSize` for all but the last, which has the rest.
    func length(ofPart number: Int) -> Int {
        min(partSize, size - (number - 1) * partSize)
    }
}

/// A one-step upload URL (`POST /v1/files/urls`, SDK 0.28) waiting for its single PUT.
struct SingleUpload: Sendable {
    let key: String
    let size: Int
    let mimeType: String
}

/// Uploads in progress and one-step upload expectations, bounded so a long demo cannot grow them forever.
actor UploadStore {
    static let capacity = 1000
    private var uploads: [String: SandboxUpload] = [:]
    private var uploadOrder: [String] = []
    private var singles: [String: SingleUpload] = [:]
    private var singleOrder: [String] = []

    func add(_ upload: SandboxUpload) {
        uploads[upload.id] = upload
        uploadOrder.append(upload.id)
        if uploadOrder.count > Self.capacity { uploads.removeValue(forKey: uploadOrder.removeFirst()) }
    }

    func upload(_ id: String) -> SandboxUpload? { uploads[id] }

    /// Stores a part; false when the upload is gone or already completed.
    func storePart(uploadID: String, number: Int, bytes: ByteBuffer, etag: String) -> Bool {
        guard var upload = uploads[uploadID], upload.completedWith == nil else { return false }
        upload.parts[number] = (bytes, etag)
        uploads[uploadID] = upload
        return true
    }

    enum Completion {
        case completed(SandboxUpload, ByteBuffer)
        case alreadyCompleted(SandboxUpload)
        case notFound
        case invalid(String)
    }

    /// Checks the ETags against the parts (all there, in order) and joins the parts into one buffer.
    func complete(uploadID: String, etags: [String]) -> Completion {
        guard var upload = uploads[uploadID] else { return .notFound }
        if let previous = upload.completedWith {
            return previous == etags
                ? .alreadyCompleted(upload) : .invalid("the upload is already completed with other etags")
        }
        let missing = (1...upload.partCount).filter { upload.parts[$0] == nil }
        if !missing.isEmpty {
            return .invalid(
                "part(s) \(missing.map(String.init).joined(separator: ", ")) of \(upload.partCount) not uploaded")
        }
        guard etags.count == upload.partCount else {
            return .invalid("expected \(upload.partCount) etag(s), got \(etags.count)")
        }
        for (index, etag) in etags.enumerated()
        where Self.unquoted(etag) != Self.unquoted(upload.parts[index + 1]!.etag) {
            return .invalid("etag \(index + 1) does not match part \(index + 1)")
        }
        var joined = ByteBufferAllocator().buffer(capacity: upload.size)
        for number in 1...upload.partCount {
            var part = upload.parts[number]!.bytes
            joined.writeBuffer(&part)
        }
        upload.parts = [:]
        upload.completedWith = etags
        uploads[uploadID] = upload
        return .completed(upload, joined)
    }

    func addSingle(_ single: SingleUpload) {
        singles[single.key] = single
        singleOrder.append(single.key)
        if singleOrder.count > Self.capacity { singles.removeValue(forKey: singleOrder.removeFirst()) }
    }

    func single(key: String) -> SingleUpload? { singles[key] }

    /// S3 accepts an ETag with or without its quotes in a completion.
    static func unquoted(_ etag: String) -> Substring {
        var text = Substring(etag)
        if text.hasPrefix("\"") && text.hasSuffix("\"") && text.count >= 2 { text = text.dropFirst().dropLast() }
        return text
    }

    static func newID() -> String {
        "upl_" + (0..<12).map { _ in UInt8.random(in: 0...255) }.hexString
    }

    /// S3's ETag of a single part: the hex MD5 of its bytes, in quotes.
    static func etag(of bytes: ByteBuffer) -> String {
        var md5 = Insecure.MD5()
        bytes.withUnsafeReadableBytes { md5.update(bufferPointer: $0) }
        return "\"" + md5.finalize().hexString + "\""
    }
}
