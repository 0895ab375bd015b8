import Foundation
import NIOCore
import Testing

@testable import CredGate

/// The sentences that stand for a failed platform call in `last_error`, the log and problem bodies: fixed text for
/// known errors, the type name for anything else, never the error's own description.
@Suite struct ErrorTextTests {
    /// An error whose description quotes what it was given, as some library errors do.
    struct QuotingError: Error, CustomStringConvertible {
        var description: String { "rejected header x-api-key: sk-live-QUOTED-7f1a; body {\"refresh\": \"eyJ...\"}" }
    }

    @Test func anUnknownErrorIsNamedByItsTypeOnly() {
        #expect(AsyncHTTPSessionTransport.describe(QuotingError()) == "QuotingError")
        #expect(FollowUpCall.describe(QuotingError()) == "QuotingError")
    }

    @Test func knownErrorsAreFixedSentences() {
        #expect(
            AsyncHTTPSessionTransport.describe(IOError(errnoCode: ECONNREFUSED, reason: "connect"))
                == "connection refused")
        #expect(
            AsyncHTTPSessionTransport.describe(IOError(errnoCode: ECONNRESET, reason: "read"))
                == "the connection was reset")
        #expect(
            AsyncHTTPSessionTransport.describe(ChannelError.ioOnClosedChannel)
                == "the connection closed before the answer")
        #expect(
            AsyncHTTPSessionTransport.describe(NIOTooManyBytesError(maxBytes: 1 << 20)).hasPrefix(
                "the answer is larger than"))
    }

    @Test func aFollowUpCallPassesOnTheTransportsSentenceAndTheFiltersRefusal() {
        #expect(FollowUpCall.describe(SessionTransportError("connect timed out")) == "connect timed out")
        let unavailable = SessionUnavailable(
            retryAfter: .seconds(3), reason: "login circuit open after 5 consecutive failures")
        #expect(FollowUpCall.describe(unavailable) == "login circuit open after 5 consecutive failures")
        #expect(FollowUpCall.describe(CancellationError()) == "cancelled")
    }
}
