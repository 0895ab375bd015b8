import Crypto
import Hummingbird

/// The deterministic content served by `GET /api/v1/sandbox/download/?bytes=N`.
///
/// Byte `i` is `UInt8(truncatingIfNeeded: i &* 31 &+ 7)`, so a test can check any range without
/// having held the whole body. The sequence repeats every 256 bytes: length and digest catch a lost,
/// added or altered byte, but not two whole 256-byte-aligned blocks swapped.
public enum SandboxPayload {
    /// Size of the chunks the download is written in.
    public static let chunkSize = 64 * 1024

    /// Byte at absolute position `index` of the payload.
    @inlinable
    public static func byte(at index: Int) -> UInt8 {
        UInt8(truncatingIfNeeded: index &* 31 &+ 7)
    }

    /// Fills `buffer` with the payload bytes starting at absolute position `offset`.
    public static func fill(_ buffer: UnsafeMutableRawBufferPointer, offset: Int) {
        let count = buffer.count
        guard count > 0 else { return }
        // One period computed byte by byte, then doubled by copying: fast even in debug builds.
        let head = min(count, 256)
        for i in 0..<head {
            buffer[i] = byte(at: offset &+ i)
        }
        var filled = head
        while filled < count {
            let n = min(filled, count - filled)
            (buffer.baseAddress! + filled).copyMemory(from: buffer.baseAddress!, byteCount: n)
            filled += n
        }
    }

    /// `count` payload bytes starting at absolute position `offset`.
    public static func bytes(offset: Int, count: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { storage, initialized in
            fill(UnsafeMutableRawBufferPointer(storage), offset: offset)
            initialized = count
        }
    }

    /// Hex SHA-256 of the first `count` payload bytes, computed chunk by chunk.
    public static func sha256Hex(count: Int) -> String {
        var hasher = SHA256()
        var chunk = [UInt8](repeating: 0, count: chunkSize)
        var done = 0
        while done < count {
            let n = min(chunkSize, count - done)
            chunk.withUnsafeMutableBytes { raw in
                let slice = UnsafeMutableRawBufferPointer(rebasing: raw[0..<n])
                fill(slice, offset: done)
                hasher.update(bufferPointer: UnsafeRawBufferPointer(slice))
            }
            done += n
        }
        return hasher.finalize().hexString
    }

    /// One full chunk starting at a multiple of ``chunkSize``. Because the period (256) divides the chunk size,
    /// every aligned chunk is identical, so the download writes this one shared, immutable buffer over and over.
    static let alignedChunk: ByteBuffer = {
        var buffer = ByteBufferAllocator().buffer(capacity: chunkSize)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: chunkSize) { raw in
            fill(UnsafeMutableRawBufferPointer(rebasing: raw[0..<chunkSize]), offset: 0)
            return chunkSize
        }
        return buffer
    }()
}

extension Sequence where Element == UInt8 {
    /// Lower-case hex.
    var hexString: String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(64)
        for byte in self {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
