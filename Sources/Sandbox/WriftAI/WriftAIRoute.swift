/// The WriftAI routes the sandbox serves, recognised from the raw path; also names each route's template for
/// ``WriftAISandboxCounters/routes``, so ids in paths do not make a counter per id.
enum WriftAIRoute: Equatable {
    case user
    case models
    case modelsByOwner(owner: String)
    case model(owner: String, name: String)
    case hardware
    case predictions
    case prediction(id: String)
    case predictionCancel(id: String)
    case predictionStream(id: String)
    case uploads
    case uploadComplete(id: String)
    case fileURLs
    /// Not the platform's API: the storage behind presigned URLs, `/sandbox-s3/<bucket>/<key>`.
    case storage
    case other

    static let apiPrefix = "/v1"

    init(path: String) {
        if path.hasPrefix(Presigner.pathPrefix) {
            self = .storage
            return
        }
        guard path.hasPrefix(Self.apiPrefix + "/") else {
            self = .other
            return
        }
        let segments = path.dropFirst(Self.apiPrefix.count + 1).split(separator: "/", omittingEmptySubsequences: false)
            .map(String.init)
        guard !segments.contains(where: \.isEmpty) else {
            self = .other
            return
        }
        switch segments.count {
        case 1:
            switch segments[0] {
            case "user": self = .user
            case "models": self = .models
            case "hardware": self = .hardware
            case "predictions": self = .predictions
            case "uploads": self = .uploads
            default: self = .other
            }
        case 2:
            switch segments[0] {
            case "models": self = .modelsByOwner(owner: segments[1])
            case "predictions": self = .prediction(id: segments[1])
            case "files" where segments[1] == "urls": self = .fileURLs
            default: self = .other
            }
        case 3:
            switch (segments[0], segments[2]) {
            case ("models", _): self = .model(owner: segments[1], name: segments[2])
            case ("predictions", "cancel"): self = .predictionCancel(id: segments[1])
            case ("predictions", "stream"): self = .predictionStream(id: segments[1])
            case ("uploads", "complete"): self = .uploadComplete(id: segments[1])
            default: self = .other
            }
        default:
            self = .other
        }
    }

    /// The path template for counting; nil for paths counted as they arrived.
    var template: String? {
        switch self {
        case .user: "/v1/user"
        case .models: "/v1/models"
        case .modelsByOwner: "/v1/models/{owner}"
        case .model: "/v1/models/{owner}/{name}"
        case .hardware: "/v1/hardware"
        case .predictions: "/v1/predictions"
        case .prediction: "/v1/predictions/{id}"
        case .predictionCancel: "/v1/predictions/{id}/cancel"
        case .predictionStream: "/v1/predictions/{id}/stream"
        case .uploads: "/v1/uploads"
        case .uploadComplete: "/v1/uploads/{id}/complete"
        case .fileURLs: "/v1/files/urls"
        case .storage: Presigner.pathPrefix + "{bucket}/{key}"
        case .other: nil
        }
    }
}
