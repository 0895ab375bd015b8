import Yams

extension ConfigLoader {
    /// `endpoints.wriftai_upload` (every problem reported with its YAML path).
    static func readWriftAIUpload(_ node: Node, at path: ConfigPath, _ w: ConfigWalker) -> WriftAIUploadConfig? {
        guard let f = w.mapping(node, at: path, allowed: ["flow", "path", "part_concurrency", "part_retries"]) else {
            return nil
        }
        let flow =
            f.value("flow") { node, at -> WriftAIUploadConfig.Flow? in
                guard let v = w.string(node, at: at) else { return nil }
                guard let flow = WriftAIUploadConfig.Flow(rawValue: v) else {
                    w.issue(
                        at,
                        "expected one of \(WriftAIUploadConfig.Flow.allCases.map(\.rawValue).joined(separator: ", ")), got '\(v)'"
                    )
                    return nil
                }
                return flow
            } ?? .threeStep
        let platformPath = f.value("path") { node, at -> String? in
            guard let v = w.string(node, at: at) else { return nil }
            guard v.hasPrefix("/"), !v.contains("?"), !v.contains("{"), !v.contains("*") else {
                w.issue(at, "must be a literal path starting with '/' (no query, parameter or wildcard)")
                return nil
            }
            return v.count > 1 && v.hasSuffix("/") ? String(v.dropLast()) : v
        }
        var c = WriftAIUploadConfig(flow: flow, path: platformPath)
        if let v = f.value("part_concurrency", { w.integer($0, at: $1, in: 1...64) }) { c.partConcurrency = v }
        if let v = f.value("part_retries", { w.integer($0, at: $1, in: 0...10) }) { c.partRetries = v }
        return c
    }
}
