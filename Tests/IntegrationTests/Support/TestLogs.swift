import Foundation

/// Where the logs of gateways the tests start as processes are kept for CI's secret scan of a whole test run
/// (issue 12.1): with `CREDGATE_TEST_LOG_DIR` set, each spawned gateway's log is written there when it stops
/// (in-process gateways log to standard output with `CREDGATE_TEST_LOG=1`). `scripts/secret-scan.py` then searches
/// both for every secret the tests configure and for any issued token.
enum TestLogs {
    static func keep(_ text: String, from source: String) {
        guard let directory = ProcessInfo.processInfo.environment["CREDGATE_TEST_LOG_DIR"], !directory.isEmpty,
            !text.isEmpty
        else { return }
        let url = URL(fileURLWithPath: directory).appendingPathComponent("\(source)-\(UUID().uuidString).log")
        try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try? Data(text.utf8).write(to: url)
    }
}
