import NIOCore

/// The accept/hold/reject bookkeeping both upload validators share (``UploadValidator``, ``RawUploadValidator``):
/// body chunks that come before the decision are held; on accept they are released (rewritten first where the
/// validator must change the head of the body) and every later chunk goes straight out; a rejection drops
/// everything held and not yet taken. What may go out is taken by the transport with ``takeForwardable()``.
struct ForwardGate {
    private(set) var decision: UploadDecision = .needMore
    private var held: [ByteBuffer] = []
    private var output: [ByteBuffer] = []

    /// Bytes held or released and not yet taken.
    var retainedBytes: Int {
        held.reduce(0) { $0 + $1.readableBytes } + output.reduce(0) { $0 + $1.readableBytes }
    }

    var isUndecided: Bool { if case .needMore = decision { true } else { false } }
    var isRejected: Bool { if case .reject = decision { true } else { false } }

    /// A body chunk: held until the decision, out at once after an accept.
    mutating func pass(_ chunk: ByteBuffer) {
        if case .accept = decision { output.append(chunk) } else { held.append(chunk) }
    }

    /// Bytes of the validator's own to send after what was released (a multipart epilogue).
    mutating func append(_ buffer: ByteBuffer) {
        output.append(buffer)
    }

    /// Accepts: `release` gets the held chunks (and may rewrite them) and gives the plan they go out under.
    mutating func accept(_ release: (inout [ByteBuffer]) -> UploadPlan) {
        var forward = held
        held = []
        let plan = release(&forward)
        output.append(contentsOf: forward)
        decision = .accept(plan)
    }

    /// Rejects: nothing held or released and not yet taken goes out.
    mutating func reject(_ rejection: UploadRejection) -> UploadDecision {
        decision = .reject(rejection)
        held = []
        output = []
        return decision
    }

    mutating func takeForwardable() -> [ByteBuffer] {
        defer { output = [] }
        return output
    }
}
