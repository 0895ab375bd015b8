/// `endpoints.wriftai_upload`: the one-call upload for curl, `PUT /credgate/v1/wriftai/files/{name}`, which runs
/// WriftAI's whole upload flow (see ``WriftAIUploadEndpoint``). Absent: no such endpoint.
///
/// The endpoint borrows the upstream, credentials and limits (`max_body_bytes`: the largest file taken) of the
/// route that serves ``path`` (as every `/credgate/v1/` endpoint does), and exists only when such a route exists.
struct WriftAIUploadConfig: Sendable, Equatable {
    /// Which of WriftAI's upload flows to run.
    enum Flow: String, Sendable, CaseIterable {
        /// SDK 0.30 and later: `POST /uploads` → `PUT` each part to its presigned URL → `POST /uploads/{id}/complete`.
        case threeStep = "three_step"
        /// SDK 0.28: `POST /files/urls` → one `PUT upload_url`.
        case oneStep = "one_step"

        /// The platform path a flow starts at when `path` is not set (the WriftAI profile mounts `/v1`).
        var defaultPath: String {
            switch self {
            case .threeStep: "/v1/uploads"
            case .oneStep: "/v1/files/urls"
            }
        }
    }

    var flow: Flow
    /// The platform path of the flow's first call (`/v1/uploads`, or `/v1/files/urls` for one step); the three-step
    /// flow completes at `{path}/{id}/complete` through the same route.
    var path: String
    /// Parts sent at the same time (three-step flow).
    var partConcurrency = 4
    /// How many times a failed part `PUT` is sent again (a part `PUT` is idempotent).
    var partRetries = 2

    init(flow: Flow = .threeStep, path: String? = nil) {
        self.flow = flow
        self.path = path ?? flow.defaultPath
    }
}
