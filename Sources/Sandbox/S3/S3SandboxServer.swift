import Crypto
import Hummingbird
import Logging

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// An S3 emulator on a loopback port for `credgate serve --sandbox` (upstream `s3`) and tests: path-style
/// `/<bucket>/<key>` with AWS SigV4 checked on every request (header or presigned query, expiry, the signed
/// `Content-Type` of an upload link), PutObject, GetObject (and HEAD, `Range`), DeleteObject, ListObjectsV2,
/// multipart uploads; S3's XML errors. One bucket, one key pair, in memory.
public final class S3SandboxServer: Sendable {
    public let port: Int
    public let baseURL: String
    public let bucket: String
    public let accessKeyID: String
    public let secretAccessKey: String
    public let region: String
    private let task: Task<Void, any Error>
    private let closeListener: @Sendable () async -> Void

    private init(
        port: Int, baseURL: String, bucket: String, verifier: S3SigV4Verifier, task: Task<Void, any Error>,
        closeListener: @escaping @Sendable () async -> Void
    ) {
        self.port = port
        self.baseURL = baseURL
        self.bucket = bucket
        self.accessKeyID = verifier.accessKeyID
        self.secretAccessKey = verifier.secretAccessKey
        self.region = verifier.region
        self.task = task
        self.closeListener = closeListener
    }

    deinit { task.cancel() }

    public static func start(
        bucket: String = "sandbox-bucket", region: String = "us-east-1", host: String = "127.0.0.1",
        port: Int = 0
    ) async throws -> S3SandboxServer {
        let verifier = S3SigV4Verifier(
            accessKeyID: "AKIASANDBOX" + String(UUID().uuidString.prefix(8)).uppercased(),
            secretAccessKey: "sandbox-" + UUID().uuidString.lowercased(), region: region)
        let (listening, continuation) = AsyncThrowingStream<SandboxServer.Listener, any Error>.makeStream()
        var logger = Logger(label: "credgate.sandbox.s3")
        logger.logLevel = .warning
        let store = S3BucketStore()
        // The object the start line's example (`curl -L .../credgate/v1/s3/download/example.txt`) fetches.
        let example = ByteBuffer(string: "Hello from credgate's S3 sandbox.\n")
        await store.put(
            "example.txt",
            .init(
                bytes: example, contentType: "text/plain",
                etag: "\"" + Array(Insecure.MD5.hash(data: example.readableBytesView)).hexString + "\"",
                lastModified: Int(Date().timeIntervalSince1970)))
        let responder = S3SandboxResponder(bucket: bucket, verifier: verifier, store: store)
        let app = Application(
            responder: responder,
            configuration: .init(address: .hostname(host, port: port), serverName: nil),
            onServerRunning: { channel in
                continuation.yield(
                    SandboxServer.Listener(port: channel.localAddress?.port, close: { try? await channel.close() }))
            },
            logger: logger)
        let task = Task {
            do {
                try await app.run()
                continuation.finish()
            } catch {
                continuation.finish(throwing: error)
                throw error
            }
        }
        do {
            var iterator = listening.makeAsyncIterator()
            guard let listener = try await iterator.next() else {
                throw SandboxServer.StartError.stoppedBeforeListening
            }
            let bound = listener.port ?? port
            return S3SandboxServer(
                port: bound, baseURL: SandboxServer.baseURL(host: host, port: bound), bucket: bucket,
                verifier: verifier, task: task, closeListener: listener.close)
        } catch {
            task.cancel()
            throw error
        }
    }

    public func shutdown() async throws {
        await closeListener()
        task.cancel()
        _ = await task.result
    }
}

/// Objects and multipart uploads in memory.
actor S3BucketStore {
    struct Object: Sendable {
        var bytes: ByteBuffer
        var contentType: String
        var etag: String
        var lastModified: Int
    }

    private var objects: [String: Object] = [:]
    private var uploads: [String: (key: String, contentType: String, parts: [Int: ByteBuffer])] = [:]

    func put(_ key: String, _ object: Object) { objects[key] = object }
    func get(_ key: String) -> Object? { objects[key] }
    func delete(_ key: String) { objects[key] = nil }
    func list(prefix: String) -> [(String, Object)] {
        objects.filter { $0.key.hasPrefix(prefix) }.sorted { $0.key < $1.key }
    }

    func createUpload(key: String, contentType: String) -> String {
        let id = UUID().uuidString.lowercased()
        uploads[id] = (key, contentType, [:])
        return id
    }

    func putPart(upload: String, number: Int, _ bytes: ByteBuffer) -> Bool {
        guard uploads[upload] != nil else { return false }
        uploads[upload]!.parts[number] = bytes
        return true
    }

    /// Joins the parts in number order into the object; nil for an unknown upload.
    func complete(upload: String, now: Int) -> (key: String, etag: String)? {
        guard let u = uploads.removeValue(forKey: upload) else { return nil }
        var all = ByteBuffer()
        var digests: [UInt8] = []
        for number in u.parts.keys.sorted() {
            var part = u.parts[number]!
            digests += Array(Insecure.MD5.hash(data: part.readableBytesView))
            all.writeBuffer(&part)
        }
        let etag = "\"" + Array(Insecure.MD5.hash(data: digests)).hexString + "-\(u.parts.count)\""
        objects[u.key] = Object(bytes: all, contentType: u.contentType, etag: etag, lastModified: now)
        return (u.key, etag)
    }

    func abort(upload: String) { uploads[upload] = nil }
}
