import Crypto
import NIOCore
import _CryptoExtras

/// The encryption of a spooled body (``BodySpool``, the WriftAI upload's `UploadSpoolFile`): AES-256-CTR under a
/// random key that exists only in this value, from a random initial counter block. CTR lets the stream be
/// encrypted and decrypted piecewise at any offset, so a file can be written as bytes arrive and read back by
/// range. No integrity is needed: the key dies with the process, and the file has no name.
struct SpoolCipher: @unchecked Sendable {
    private let key = SymmetricKey(size: .bits256)
    /// The random initial counter block, as two big-endian halves.
    private let initialCounter: (high: UInt64, low: UInt64)

    init() {
        var random = SystemRandomNumberGenerator()
        initialCounter = (random.next(), random.next())
    }

    /// Appends `bytes`, which sit at `offset` in the body, XORed with the keystream there (CTR encryption and
    /// decryption are the same operation). Any offset works; a whole-block offset needs a single call.
    func crypt(_ bytes: UnsafeRawBufferPointer, at offset: Int, into out: inout ByteBuffer) throws {
        var bytes = bytes
        var offset = offset
        let skip = offset % 16
        if skip != 0, !bytes.isEmpty {
            let count = min(16 - skip, bytes.count)
            var block = [UInt8](repeating: 0, count: 16)
            block.replaceSubrange(skip..<(skip + count), with: bytes.prefix(count))
            let encrypted = try AES._CTR.encrypt(block, using: key, nonce: nonce(forBlock: offset / 16))
            _ = encrypted.withUnsafeBytes {
                out.writeBytes(UnsafeRawBufferPointer(rebasing: $0[skip..<(skip + count)]))
            }
            bytes = UnsafeRawBufferPointer(rebasing: bytes[count...])
            offset += count
        }
        guard !bytes.isEmpty else { return }
        let encrypted = try AES._CTR.encrypt(bytes, using: key, nonce: nonce(forBlock: offset / 16))
        _ = encrypted.withUnsafeBytes { out.writeBytes($0) }
    }

    private func nonce(forBlock index: Int) throws -> AES._CTR.Nonce {
        try AES._CTR.Nonce(nonceBytes: Self.counterBlock(initial: initialCounter, plus: UInt64(index)))
    }

    /// The counter block for block `blocks` of the stream: `initial + blocks` as a 128-bit big-endian number,
    /// the way AES-CTR itself advances the counter from block to block.
    static func counterBlock(initial: (high: UInt64, low: UInt64), plus blocks: UInt64) -> [UInt8] {
        let (low, carry) = initial.low.addingReportingOverflow(blocks)
        let high = initial.high &+ (carry ? 1 : 0)
        var bytes: [UInt8] = []
        bytes.reserveCapacity(16)
        withUnsafeBytes(of: high.bigEndian) { bytes.append(contentsOf: $0) }
        withUnsafeBytes(of: low.bigEndian) { bytes.append(contentsOf: $0) }
        return bytes
    }
}
