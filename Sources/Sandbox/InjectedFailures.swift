import Hummingbird

/// "Fail the next N calls with status S" for one route, so tests can watch how a gateway copes with platform errors
/// (that it does not cache them, that a two-step flow reports its second step failing).
actor InjectedFailures {
    private var remaining = 0
    private var status = 500

    /// Replaces any pending failures; `count` 0 cancels them.
    func set(count: Int, status: Int) {
        remaining = count
        self.status = status
    }

    /// The status to fail this call with, consuming one pending failure; nil to answer normally.
    func take() -> Int? {
        guard remaining > 0 else { return nil }
        remaining -= 1
        return status
    }

    /// What an injected failure answers: a DRF `{"detail": ...}` with the status, and `Retry-After: 1` on 429 as
    /// DRF's throttle answer carries.
    static func response(status: Int, route: String) -> Response {
        var response = JSONResponses.detail(HTTPResponse.Status(code: status), "Injected \(route) failure.")
        if status == 429 { response.headers[.retryAfter] = "1" }
        return response
    }
}
