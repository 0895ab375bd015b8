import NIOCore
import NIOHTTP1

/// `X-Request-ID`: the client's when it is sane, else a fresh random one.
enum RequestID {
    static func from(_ headers: HTTPHeaders) -> String? {
        guard let id = headers.first(name: "x-request-id"), !id.isEmpty, id.utf8.count <= 128,
            id.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
        else { return nil }
        return id
    }

    static func generate() -> String { RandomRequestID.generate().text }

    static func format(_ a: UInt64, _ b: UInt64) -> String {
        // 32 lower-case hex digits written in place: one allocation, no intermediate strings.
        String(unsafeUninitializedCapacity: 32) { buffer in
            RandomRequestID(high: a, low: b).write(into: UnsafeMutableRawPointer(buffer.baseAddress!))
            return 32
        }
    }
}

/// A request ID the gateway made: 128 random bits, written as 32 lower-case hex digits straight into a head or a
/// log line. As a `String` (``text``) the 32 digits are too long to be stored inline: one heap allocation per request
/// (freed on the access log's thread), which the fast path avoids.
struct RandomRequestID: Sendable, Equatable {
    let high: UInt64
    let low: UInt64

    static func generate() -> RandomRequestID {
        var rng = SystemRandomNumberGenerator()
        return RandomRequestID(high: rng.next(), low: rng.next())
    }

    var text: String { RequestID.format(high, low) }

    /// The 32 digits into `out`, as ``text`` spells them.
    func write(into out: UnsafeMutableRawPointer) {
        let digits: StaticString = "0123456789abcdef"
        for i in 0..<16 {
            out.storeBytes(
                of: digits.utf8Start[Int((high >> UInt64(60 - 4 * i)) & 0xF)], toByteOffset: i, as: UInt8.self)
            out.storeBytes(
                of: digits.utf8Start[Int((low >> UInt64(60 - 4 * i)) & 0xF)], toByteOffset: 16 + i, as: UInt8.self)
        }
    }

    func write(into out: inout ByteBuffer) {
        out.writeWithUnsafeMutableBytes(minimumWritableBytes: 32) { memory in
            write(into: memory.baseAddress!)
            return 32
        }
    }
}
