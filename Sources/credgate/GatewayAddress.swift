import Foundation

/// Where the commands that talk to a running gateway (`status`, `wait`) find it: `--url`, else `CREDGATE_URL`,
/// else `http://CREDGATE_HOST:CREDGATE_PORT` (a host of `0.0.0.0` is reached on `127.0.0.1`), else
/// `http://127.0.0.1:8080`.
enum GatewayAddress {
    static func resolve(url: String?, environment env: [String: String] = ProcessInfo.processInfo.environment) -> String
    {
        let base =
            url ?? env["CREDGATE_URL"]
            ?? "http://\(env["CREDGATE_HOST"].map { $0 == "0.0.0.0" ? "127.0.0.1" : $0 } ?? "127.0.0.1"):\(env["CREDGATE_PORT"] ?? "8080")"
        // `--url http://host:8080/` and `.../` + `/credgate/status` would make `//credgate/status`, which the
        // gateway refuses as an unsafe path.
        return base.hasSuffix("/") ? String(base.dropLast()) : base
    }
}
