import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing
import _CryptoExtras

@testable import CredGate

#if canImport(Glibc)
    import Glibc
#endif

// MARK: - Helpers

/// A spool on a real one-thread event loop with the shared file I/O pool, in a fresh directory of its own.
private final class SpoolRig: @unchecked Sendable {
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let loop: any EventLoop
    let directory: String
    let fileIO = NonBlockingFileIO(threadPool: .singleton)
    /// Only touched on `loop` (through `on` and `value`).
    private var spool: BodySpool?

    private init(directory: String) {
        loop = group.next()
        self.directory = directory
    }

    /// Runs `body` with a fresh rig, then closes the spool, stops the loop and removes the directory.
    static func with(memoryLimit: Int, directory: String? = nil, _ body: (SpoolRig) async throws -> Void) async throws {
        let ownDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("credgate-spool-\(UUID())")
            .path
        try FileManager.default.createDirectory(atPath: ownDirectory, withIntermediateDirectories: false)
        let rig = SpoolRig(directory: directory ?? ownDirectory)
        try await rig.loop.submit {
            rig.spool = BodySpool(
                directory: rig.directory, memoryLimit: memoryLimit, fileIO: rig.fileIO,
                allocator: ByteBufferAllocator(), eventLoop: rig.loop)
        }.get()
        do {
            try await body(rig)
        } catch {
            try await rig.tearDown(ownDirectory)
            throw error
        }
        try await rig.tearDown(ownDirectory)
    }

    private func tearDown(_ ownDirectory: String) async throws {
        try await loop.submit {
            self.spool?.close()
            self.spool = nil
        }.get()
        try await group.shutdownGracefully()
        try? FileManager.default.removeItem(atPath: ownDirectory)
    }

    func on<T: Sendable>(_ body: @escaping @Sendable (BodySpool) -> EventLoopFuture<T>) async throws -> T {
        try await loop.flatSubmit { body(self.spool!) }.get()
    }

    func value<T: Sendable>(_ body: @escaping @Sendable (BodySpool) -> T) async throws -> T {
        try await loop.submit { body(self.spool!) }.get()
    }

    func append(_ buffer: ByteBuffer) async throws {
        try await on { $0.append(buffer) }
    }

    /// Reads the whole body back, returning what came and the size of every chunk handed over.
    func readAll(chunkSize: Int = 65_536) async throws -> (digest: SHA256Digest, count: Int, chunkSizes: [Int]) {
        let collector = Collector()
        let loop = self.loop
        try await on { spool in
            spool.read(chunkSize: chunkSize) { chunk in
                collector.add(chunk)
                return loop.makeSucceededVoidFuture()
            }
        }
        return (collector.hasher.finalize(), collector.count, collector.chunkSizes)
    }

    var directoryEntries: [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
    }
}

/// What a read delivered; only touched on the rig's loop until the read completed.
private final class Collector: @unchecked Sendable {
    var hasher = SHA256()
    var count = 0
    var chunkSizes: [Int] = []

    func add(_ chunk: ByteBuffer) {
        chunk.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
        count += chunk.readableBytes
        chunkSizes.append(chunk.readableBytes)
    }
}

/// Fast deterministic "random" content (xorshift64*), so large bodies are cheap to make in debug builds.
private struct ContentGenerator {
    var state: UInt64

    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 0x2545_F491_4F6C_DD1D
    }

    mutating func buffer(_ count: Int) -> ByteBuffer {
        var buffer = ByteBufferAllocator().buffer(capacity: count)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { raw in
            var i = 0
            while i < count {
                var word = next()
                withUnsafeBytes(of: &word) { word in
                    let n = min(8, count - i)
                    UnsafeMutableRawBufferPointer(rebasing: raw[i..<(i + n)]).copyMemory(
                        from: UnsafeRawBufferPointer(rebasing: word[0..<n]))
                }
                i += 8
            }
            return count
        }
        return buffer
    }
}

private func digest(_ buffers: [ByteBuffer]) -> SHA256Digest {
    var hasher = SHA256()
    for buffer in buffers { buffer.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) } }
    return hasher.finalize()
}

private func expectSpoolError<T>(_ expected: BodySpoolError, _ body: () async throws -> T) async {
    do {
        _ = try await body()
        Issue.record("expected \(expected)")
    } catch let error as BodySpoolError {
        #expect(error == expected)
    } catch {
        Issue.record("expected \(expected), got \(error)")
    }
}

// MARK: - Tests

@Suite struct BodySpoolTests {
    @Test func smallBodyStaysInMemory() async throws {
        try await SpoolRig.with(memoryLimit: 1024) { rig in
            try await rig.append(ByteBuffer(string: "hello "))
            try await rig.append(ByteBuffer(string: "world"))
            try await rig.on { $0.finish() }
            #expect(try await rig.value { $0.isOnDisk } == false)
            #expect(try await rig.value { $0.fileDescriptorForTesting } == nil)
            #expect(try await rig.value { $0.byteCount } == 11)

            let received = NIOLockedValueBox(ByteBuffer())
            let loop = rig.loop
            try await rig.on { spool in
                spool.read { chunk in
                    var chunk = chunk
                    received.withLockedValue { $0.writeBuffer(&chunk) }
                    return loop.makeSucceededVoidFuture()
                }
            }
            #expect(received.withLockedValue { String(buffer: $0) } == "hello world")
            #expect(rig.directoryEntries.isEmpty)
        }
    }

    @Test func oddSizedAppendsAcrossTheMemoryLimitReadBackExactly() async throws {
        try await SpoolRig.with(memoryLimit: 4096) { rig in
            var generator = ContentGenerator(state: 0x9E37_79B9_7F4A_7C15)
            let sizes = [1, 15, 17, 4095, 65_537, 16, 3, 31, 100_000, 7, 1, 12_345, 32, 65_536]
            var pieces: [ByteBuffer] = []
            for (index, size) in sizes.enumerated() {
                let piece = generator.buffer(size)
                pieces.append(piece)
                try await rig.append(piece)
                // 1 + 15 + 17 = 33 bytes fit; the 4095-byte append passes 4096 and moves everything to the file.
                #expect(try await rig.value { $0.isOnDisk } == (index >= 3))
            }
            try await rig.on { $0.finish() }
            #expect(try await rig.value { $0.byteCount } == sizes.reduce(0, +))

            let expected = digest(pieces)
            let first = try await rig.readAll()
            #expect(first.digest == expected)
            #expect(first.count == sizes.reduce(0, +))
            let second = try await rig.readAll()
            #expect(second.digest == expected)
            // Small and unaligned chunk sizes decrypt the same.
            #expect(try await rig.readAll(chunkSize: 48).digest == expected)
            #expect(try await rig.readAll(chunkSize: 1000).digest == expected)
        }
    }

    @Test func appendsMadeWithoutWaitingAreStoredInOrder() async throws {
        try await SpoolRig.with(memoryLimit: 1000) { rig in
            var generator = ContentGenerator(state: 42)
            let pieces = [700, 299, 2, 5000, 13, 70_001].map { generator.buffer($0) }
            let loop = rig.loop
            try await rig.on { spool in
                let stored = pieces.map { spool.append($0) } + [spool.finish()]
                return EventLoopFuture.andAllSucceed(stored, on: loop)
            }
            #expect(try await rig.value { $0.isOnDisk })
            #expect(try await rig.readAll(chunkSize: 4096).digest == digest(pieces))
        }
    }

    @Test func fortyMebibytesStreamThrough() async throws {
        try await SpoolRig.with(memoryLimit: 256 * 1024) { rig in
            var generator = ContentGenerator(state: 7)
            var hasher = SHA256()
            let appends = 40 * 16
            for _ in 0..<appends {
                let piece = generator.buffer(65_536)
                piece.withUnsafeReadableBytes { hasher.update(bufferPointer: $0) }
                try await rig.append(piece)
            }
            try await rig.on { $0.finish() }
            #expect(try await rig.value { $0.isOnDisk })
            #expect(try await rig.value { $0.byteCount } == 40 * 1024 * 1024)
            let read = try await rig.readAll()
            #expect(read.count == 40 * 1024 * 1024)
            #expect(read.digest == hasher.finalize())
            #expect(read.chunkSizes.allSatisfy { $0 == 65_536 })
        }
    }

    @Test func theFileHasNoNameAndNoPlaintext() async throws {
        try await SpoolRig.with(memoryLimit: 1024) { rig in
            let pattern = "%PDF-1.7 SECRET-PATIENT-DATA "
            let body = String(repeating: pattern, count: 10_000)
            var rest = ByteBuffer(string: body)
            var size = 1
            while rest.readableBytes > 0 {
                try await rig.append(rest.readSlice(length: min(size, rest.readableBytes))!)
                size = size * 3 + 1
            }
            try await rig.on { $0.finish() }
            let fd = try #require(try await rig.value { $0.fileDescriptorForTesting })

            #if os(Linux)
                let raw = try #require(FileManager.default.contents(atPath: "/proc/self/fd/\(fd)"))
                #expect(raw.count == body.utf8.count)
                #expect(raw.range(of: Data("SECRET-PATIENT".utf8)) == nil)
                #expect(raw.range(of: Data("%PDF".utf8)) == nil)
            #endif

            // No directory entry ever names it: nothing in the spool directory, no link to the inode.
            #expect(rig.directoryEntries.isEmpty)
            var info = stat()
            #expect(fstat(fd, &info) == 0)
            #expect(info.st_nlink == 0)
            #expect(info.st_mode & 0o777 == 0o600)

            #expect(try await rig.readAll().digest == SHA256.hash(data: Data(body.utf8)))
        }
    }

    @Test func theFallbackFileIsUnlinkedAtOnce() async throws {
        try await SpoolRig.with(memoryLimit: 0) { rig in
            let handle = try await BodySpool.openThenUnlink(in: rig.directory, fileIO: rig.fileIO, eventLoop: rig.loop)
                .get()
            defer { try? handle.close() }
            #expect(rig.directoryEntries.isEmpty)
            let links = try handle.withUnsafeFileDescriptor { fd -> nlink_t in
                var info = stat()
                _ = fstat(fd, &info)
                return info.st_nlink
            }
            #expect(links == 0)
        }
    }

    @Test(arguments: [0, 1 << 20])
    func readWaitsForEachHandlerFuture(memoryLimit: Int) async throws {
        try await SpoolRig.with(memoryLimit: memoryLimit) { rig in
            var generator = ContentGenerator(state: 99)
            let body = generator.buffer(10 * 4096 + 100)
            try await rig.append(body)
            try await rig.on { $0.finish() }
            #expect(try await rig.value { $0.isOnDisk } == (memoryLimit == 0))

            final class Pacer: @unchecked Sendable { // touched on the loop only
                var collector = Collector()
                var outstanding = false
                var overlapped = false
                var first: EventLoopPromise<Void>?
            }
            let pacer = Pacer()
            let loop = rig.loop
            let reading = try await rig.on { spool in
                let done = spool.read(chunkSize: 4096) { chunk in
                    if pacer.outstanding { pacer.overlapped = true }
                    pacer.outstanding = true
                    pacer.collector.add(chunk)
                    let promise = loop.makePromise(of: Void.self)
                    if pacer.first == nil {
                        pacer.first = promise // held by the test: a stalled upstream
                    } else {
                        loop.scheduleTask(in: .milliseconds(1)) {
                            pacer.outstanding = false
                            promise.succeed()
                        }
                    }
                    return promise.futureResult
                }
                return loop.makeSucceededFuture(done)
            }

            try await Task.sleep(for: .milliseconds(200))
            #expect(try await loop.submit { pacer.collector.chunkSizes.count }.get() == 1)

            try await loop.submit {
                pacer.outstanding = false
                pacer.first?.succeed()
            }.get()
            try await reading.get()

            let sizes = try await loop.submit { pacer.collector.chunkSizes }.get()
            #expect(sizes.count == 11)
            #expect(sizes.allSatisfy { $0 <= 4096 })
            #expect(try await loop.submit { pacer.overlapped }.get() == false)
            #expect(try await loop.submit { pacer.collector.hasher.finalize() }.get() == digest([body]))
        }
    }

    @Test func closeIsIdempotentAndLaterCallsFail() async throws {
        try await SpoolRig.with(memoryLimit: 16) { rig in
            try await rig.append(ByteBuffer(repeating: 0x41, count: 100_000))
            try await rig.on { $0.finish() }
            #expect(try await rig.readAll().count == 100_000)

            // A read under way when the spool is closed stops at its next chunk; the descriptor closes after it.
            let held = NIOLockedValueBox<EventLoopPromise<Void>?>(nil)
            let loop = rig.loop
            let reading = try await rig.on { spool in
                let done = spool.read(chunkSize: 4096) { _ in
                    let promise = loop.makePromise(of: Void.self)
                    held.withLockedValue { $0 = promise }
                    return promise.futureResult
                }
                return loop.makeSucceededFuture(done)
            }
            while held.withLockedValue({ $0 }) == nil { try await Task.sleep(for: .milliseconds(5)) }
            try await rig.value { spool in
                spool.close()
                spool.close()
            }
            held.withLockedValue { $0 }?.succeed()
            await expectSpoolError(.closed) { try await reading.get() }
            #expect(try await rig.value { $0.fileDescriptorForTesting } == nil)

            try await rig.value { $0.close() }
            await expectSpoolError(.closed) { try await rig.readAll() }
            await expectSpoolError(.closed) { try await rig.append(ByteBuffer(string: "more")) }
        }
    }

    @Test func aFailedWriteFailsEverythingAfterIt() async throws {
        let missing = "/nonexistent-credgate-spool-\(UUID())"
        try await SpoolRig.with(memoryLimit: 10, directory: missing) { rig in
            try await rig.append(ByteBuffer(string: "12345"))
            await #expect(throws: IOError.self) { try await rig.append(ByteBuffer(string: "6789012")) }
            await #expect(throws: IOError.self) { try await rig.append(ByteBuffer(string: "x")) }
            await #expect(throws: IOError.self) { try await rig.on { $0.finish() } }
        }
    }

    @Test func readBeforeFinishAndAppendAfterFinishAreRefused() async throws {
        try await SpoolRig.with(memoryLimit: 10) { rig in
            try await rig.append(ByteBuffer(string: "abc"))
            await expectSpoolError(.readBeforeFinish) { try await rig.readAll() }
            try await rig.on { $0.finish() }
            await expectSpoolError(.appendAfterFinish) { try await rig.append(ByteBuffer(string: "d")) }
        }
    }

    /// Piecewise encryption relies on `counterBlock(i)` being the counter AES-CTR itself reaches after i
    /// blocks, including carries past 32 and 64 bits and the wrap at 2^128.
    @Test(arguments: [
        (UInt64(0), UInt64(0xFFFF_FFFE)),
        (UInt64(0), UInt64.max - 1),
        (UInt64.max, UInt64.max - 1),
        (UInt64(0x0123_4567_89AB_CDEF), UInt64(0xFEDC_BA98_7654_3210)),
    ])
    func counterBlocksMatchOneShotCTR(high: UInt64, low: UInt64) throws {
        let key = SymmetricKey(size: .bits256)
        let initial = SpoolCipher.counterBlock(initial: (high, low), plus: 0)
        let zeros = [UInt8](repeating: 0, count: 16 * 5)
        let keystream = try AES._CTR.encrypt(zeros, using: key, nonce: AES._CTR.Nonce(nonceBytes: initial))
        for block in 0..<5 {
            let counter = SpoolCipher.counterBlock(initial: (high, low), plus: UInt64(block))
            let piece = try AES._CTR.encrypt(zeros[0..<16], using: key, nonce: AES._CTR.Nonce(nonceBytes: counter))
            #expect(piece == keystream[keystream.startIndex + 16 * block..<keystream.startIndex + 16 * (block + 1)])
        }
    }
}
