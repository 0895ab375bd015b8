import Atomics
import NIOConcurrencyHelpers

/// Requests and errors of one compiled route since start, for `GET /credgate/status`. Counted where the access
/// log line is written, on the connection's event loop: relaxed atomic increments, no lock, no allocation.
///
/// An error is an answer with a 4xx or 5xx status, whoever made it (credgate's own problem+json or the
/// platform's), or an exchange cut short (the client or the upstream closed the connection mid-way).
final class RouteCounters: Sendable {
    private let requests = ManagedAtomic<Int>(0)
    private let clientErrors = ManagedAtomic<Int>(0)
    private let serverErrors = ManagedAtomic<Int>(0)
    private let cutShort = ManagedAtomic<Int>(0)
    private let fastPath = ManagedAtomic<Int>(0)

    init() {}

    /// Counts one finished exchange: `status` is the answer's (0 when none was sent), `cutShort` whether it ended
    /// early.
    func record(status: UInt, cutShort wasCutShort: Bool, fastPath wasFast: Bool = false) {
        requests.wrappingIncrement(ordering: .relaxed)
        if wasFast { fastPath.wrappingIncrement(ordering: .relaxed) }
        if wasCutShort {
            cutShort.wrappingIncrement(ordering: .relaxed)
        } else if status >= 500 {
            serverErrors.wrappingIncrement(ordering: .relaxed)
        } else if status >= 400 {
            clientErrors.wrappingIncrement(ordering: .relaxed)
        }
    }

    /// The counts now (each read on its own: a request counted meanwhile may show in one and not yet another).
    var snapshot: RouteTrafficSnapshot {
        RouteTrafficSnapshot(
            requests: requests.load(ordering: .relaxed), clientErrors: clientErrors.load(ordering: .relaxed),
            serverErrors: serverErrors.load(ordering: .relaxed), cutShort: cutShort.load(ordering: .relaxed),
            fastPath: fastPath.load(ordering: .relaxed))
    }
}

/// What ``RouteCounters`` counted, as a value.
struct RouteTrafficSnapshot: Sendable, Equatable {
    var requests: Int
    /// Answers with a 4xx status.
    var clientErrors: Int
    /// Answers with a 5xx status.
    var serverErrors: Int
    /// Exchanges that ended before their answer was complete.
    var cutShort: Int
    /// Of ``requests``, those the byte-level fast path served (``FastPathHandler``).
    var fastPath: Int

    init(requests: Int = 0, clientErrors: Int = 0, serverErrors: Int = 0, cutShort: Int = 0, fastPath: Int = 0) {
        self.requests = requests
        self.clientErrors = clientErrors
        self.serverErrors = serverErrors
        self.cutShort = cutShort
        self.fastPath = fastPath
    }

    var errors: Int { clientErrors + serverErrors + cutShort }

    static func + (a: Self, b: Self) -> Self {
        Self(
            requests: a.requests + b.requests, clientErrors: a.clientErrors + b.clientErrors,
            serverErrors: a.serverErrors + b.serverErrors, cutShort: a.cutShort + b.cutShort,
            fastPath: a.fastPath + b.fastPath)
    }
}

/// The routes whose counters `GET /credgate/status` reports. Filled once, after the route table is compiled
/// (the admin endpoints are themselves one of its routes, so they exist first).
final class RouteTraffic: Sendable {
    private struct Entry: Sendable {
        let name: String
        let counters: RouteCounters
    }

    /// Written once at start-up, read by each status request: never touched on the data path.
    private let entries = NIOLockedValueBox<[Entry]>([])

    init() {}

    /// Counters of routes a reload replaced, by name: added to the current routes of the same name (a request
    /// that started before the reload may still be counting into them).
    private let replaced = NIOLockedValueBox<[String: [RouteCounters]]>([:])

    /// Publishes the routes, in table order. A route that appears more than once (the same compiled value in two
    /// entries) is counted once. `keepingPrevious` (a reload): the counts of the routes published before go on
    /// under their names, for the names still published; a route the reload removed is no longer shown.
    func publish(_ routes: [(name: String, counters: RouteCounters)], keepingPrevious: Bool = false) {
        var seen = Set<ObjectIdentifier>()
        let unique = routes.filter { seen.insert(ObjectIdentifier($0.counters)).inserted }
        let old = entries.withLockedValue { entries in
            defer { entries = unique.map { Entry(name: $0.name, counters: $0.counters) } }
            return entries
        }
        guard keepingPrevious else { return }
        let names = Set(unique.map(\.name))
        replaced.withLockedValue { replaced in
            for entry in old where names.contains(entry.name) {
                replaced[entry.name, default: []].append(entry.counters)
            }
            replaced = replaced.filter { names.contains($0.key) }
        }
    }

    /// Counts per route name, in table order; routes sharing a name are added up.
    func snapshot() -> [(route: String, traffic: RouteTrafficSnapshot)] {
        let all = entries.withLockedValue { $0 }
        let earlier = replaced.withLockedValue { $0 }
        var order: [String] = []
        var byName: [String: RouteTrafficSnapshot] = [:]
        for entry in all {
            if byName[entry.name] == nil {
                order.append(entry.name)
                byName[entry.name] = (earlier[entry.name] ?? []).reduce(RouteTrafficSnapshot()) { $0 + $1.snapshot }
            }
            byName[entry.name] = byName[entry.name]! + entry.counters.snapshot
        }
        return order.map { ($0, byName[$0]!) }
    }
}
