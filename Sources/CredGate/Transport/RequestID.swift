import NIOHTTP1

/// `X-Request-ID`: the client's when it is sane, else a fresh random one.
enum RequestID {
    static func from(_ headers: HTTPHeaders) -> String? {
        guard let id = headers.first(name: "x-request-id"), !id.isEmpty, id.utf8.count <= 128,
            id.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F })
        else { return nil }
        return id
    }

    static func generate() -> String {
        var rng = SystemRandomNumberGenerator()
        let a = rng.next() as UInt64
        let b = rng.next() as UInt64
        return format(a, b)
    }

    static func format(_ a: UInt64, _ b: UInt64) -> String {
        // 32 lower-case hex digits written in place: one allocation, no intermediate strings.
        return String(unsafeUninitializedCapacity: 32) { buffer in
            let digits: StaticString = "0123456789abcdef"
            for i in 0..<16 {
                buffer[i] = digits.utf8Start[Int((a >> UInt64(60 - 4 * i)) & 0xF)]
                buffer[16 + i] = digits.utf8Start[Int((b >> UInt64(60 - 4 * i)) & 0xF)]
            }
            return 32
        }
    }
}
