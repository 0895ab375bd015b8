#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#elseif canImport(Darwin)
    import Darwin
#endif

/// Random request IDs for the connections of one event loop, without a system call per request: 16 bytes at a
/// time from a buffer refilled from /dev/urandom every 256 IDs (the same source as `getrandom`, so the IDs stay
/// unpredictable). Falls back to ``RequestID/generate()`` if /dev/urandom cannot be read. Loop-confined.
final class RequestIDSource {
    private var buffer = [UInt8](repeating: 0, count: 4096)
    private var offset = 4096
    private var fd: Int32

    init() {
        fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)
    }

    deinit {
        if fd >= 0 { close(fd) }
    }

    func next() -> String { nextRandom().text }

    /// The next ID as bits (the fast path writes them without a `String`).
    func nextRandom() -> RandomRequestID {
        if offset + 16 > buffer.count {
            guard refill() else { return RandomRequestID.generate() }
        }
        let (a, b) = buffer.withUnsafeBytes { raw in
            (
                raw.loadUnaligned(fromByteOffset: offset, as: UInt64.self),
                raw.loadUnaligned(fromByteOffset: offset + 8, as: UInt64.self)
            )
        }
        offset += 16
        return RandomRequestID(high: a, low: b)
    }

    private func refill() -> Bool {
        guard fd >= 0 else { return false }
        var filled = 0
        while filled < buffer.count {
            let n = buffer.withUnsafeMutableBytes { raw in
                read(fd, raw.baseAddress! + filled, raw.count - filled)
            }
            if n > 0 {
                filled += n
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                return false
            }
        }
        offset = 0
        return true
    }
}
