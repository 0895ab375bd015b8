/// Cuts a body into chunks whose sizes come from the input, as TCP reads would cut it: a size byte of 0 is an
/// empty chunk (the transport may deliver one), n is n bytes; the sizes repeat until the body is used up. No
/// sizes means one chunk holding the whole body.
public func fuzzChunks(_ body: [UInt8], sizes: [UInt8]) -> [ArraySlice<UInt8>] {
    guard !sizes.isEmpty else { return [body[...]] }
    var chunks: [ArraySlice<UInt8>] = []
    var start = 0
    var turn = 0
    var emptyInARow = 0
    while start < body.count {
        let size = Int(sizes[turn % sizes.count])
        turn += 1
        let end = min(body.count, start + size)
        chunks.append(body[start..<end])
        start = end
        // All-zero sizes would never finish: after one round of empty chunks, the rest goes as one chunk.
        emptyInARow = size == 0 ? emptyInARow + 1 : 0
        if emptyInARow >= sizes.count {
            chunks.append(body[start...])
            break
        }
    }
    return chunks
}
