import Hummingbird

/// One object as the sandbox's S3 stand-in holds it.
struct StoredObject: Sendable {
    var bytes: ByteBuffer
    /// The uploaded part's `Content-Type` as received; nil when the part had none.
    var contentType: String?
    /// Hex SHA-256 of ``bytes``.
    var sha256: String
    /// S3's ETag of a single-part upload: the hex MD5 of the bytes, in quotes.
    var etag: String
    /// Seconds since the epoch.
    var lastModified: Int
}

/// Uploaded objects by bucket and key, in memory, oldest dropped first once the total passes a cap, so a long
/// demo cannot grow it forever.
actor ObjectStore {
    static let byteCapacity = 1 << 30
    static let objectCapacity = 10_000

    private struct Address: Hashable {
        var bucket: String
        var key: String
    }

    private var objects: [Address: StoredObject] = [:]
    /// Addresses in the order they were stored.
    private var order: [Address] = []
    private var totalBytes = 0

    func put(bucket: String, key: String, _ object: StoredObject) {
        let address = Address(bucket: bucket, key: key)
        if let old = objects[address] {
            totalBytes -= old.bytes.readableBytes
            order.removeAll { $0 == address }
        }
        objects[address] = object
        order.append(address)
        totalBytes += object.bytes.readableBytes
        while order.count > 1 && (totalBytes > Self.byteCapacity || order.count > Self.objectCapacity) {
            let oldest = order.removeFirst()
            totalBytes -= objects.removeValue(forKey: oldest)?.bytes.readableBytes ?? 0
        }
    }

    func get(bucket: String, key: String) -> StoredObject? {
        objects[Address(bucket: bucket, key: key)]
    }

    /// Keys in `bucket`, oldest first.
    func keys(bucket: String) -> [String] {
        order.filter { $0.bucket == bucket }.map(\.key)
    }
}
