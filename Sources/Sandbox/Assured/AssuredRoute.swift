/// The Assured routes the sandbox treats specially, recognised from the raw (still percent-encoded) path.
///
/// Classification is by path alone; each handler then decides per method. This also names the route's template
/// for ``SandboxCounters/routes``, so ids in paths do not make a counter per id.
enum AssuredRoute: Equatable {
    case login
    case tokenRefresh
    case tokenVerify
    case loggedInUserDetails
    case presign
    case fileHandle
    case providerDocuments
    case providerDocument(id: String)
    case ssnEncrypted(profileID: String)
    case ssnPlain(profileID: String)
    case providersList
    case practiceLocationProvider
    case download
    /// Not the platform's: the sandbox's S3 stand-in behind presigned URLs, `/sandbox-s3/<bucket>/<key>`.
    case storedObject
    case other

    static let loginPath = "/api/v1/users/login/"
    static let refreshPath = "/api/v1/users/token/refresh/"
    static let verifyPath = "/api/v1/users/token/verify/"
    static let userDetailsPath = "/api/v1/users/logged-in-user-details/"
    static let presignPath = "/api/v1/files/presign-s3-url/presign_s3_url/"
    static let fileHandlePath = "/api/v1/files/handle/"
    static let documentsPath = "/api/v1/users/provider-documents/"
    static let ssnEncryptedPrefix = "/api/v1/users/retrieve-update-provider-ssn-sym-encrypted/"
    static let ssnPlainPrefix = "/api/v1/users/retrieve-update-provider-ssn/"
    static let providersListPath = "/api/v1/users/providers-list/"
    static let practiceLocationProviderPrefix = "/api/v1/users/practice-location-provider/"
    static let downloadPath = "/api/v1/sandbox/download/"
    static let storedObjectTemplate = Presigner.pathPrefix + "{bucket}/{key}"

    init(path: String) {
        switch path {
        case Self.loginPath: self = .login
        case Self.refreshPath: self = .tokenRefresh
        case Self.verifyPath: self = .tokenVerify
        case Self.userDetailsPath: self = .loggedInUserDetails
        case Self.presignPath: self = .presign
        case Self.fileHandlePath: self = .fileHandle
        case Self.documentsPath: self = .providerDocuments
        case Self.providersListPath: self = .providersList
        case Self.downloadPath: self = .download
        default:
            if let id = Self.singleSegment(path, after: Self.documentsPath) {
                self = .providerDocument(id: id)
            } else if let id = Self.singleSegment(path, after: Self.ssnEncryptedPrefix) {
                self = .ssnEncrypted(profileID: id)
            } else if let id = Self.singleSegment(path, after: Self.ssnPlainPrefix) {
                self = .ssnPlain(profileID: id)
            } else if Self.singleSegment(path, after: Self.practiceLocationProviderPrefix) != nil {
                self = .practiceLocationProvider
            } else if path.hasPrefix(Presigner.pathPrefix) {
                self = .storedObject
            } else {
                self = .other
            }
        }
    }

    /// The path template for counting; nil for routes counted by their literal path.
    var template: String? {
        switch self {
        case .login: Self.loginPath
        case .tokenRefresh: Self.refreshPath
        case .tokenVerify: Self.verifyPath
        case .loggedInUserDetails: Self.userDetailsPath
        case .presign: Self.presignPath
        case .fileHandle: Self.fileHandlePath
        case .providerDocuments: Self.documentsPath
        case .providerDocument: Self.documentsPath + "{id}/"
        case .ssnEncrypted: Self.ssnEncryptedPrefix + "{profile_id}/"
        case .ssnPlain: Self.ssnPlainPrefix + "{profile_id}/"
        case .providersList: Self.providersListPath
        case .practiceLocationProvider: Self.practiceLocationProviderPrefix + "{id}/"
        case .download: Self.downloadPath
        case .storedObject: Self.storedObjectTemplate
        case .other: nil
        }
    }

    /// The one non-empty segment between `prefix` and a final slash (`{prefix}{id}/`), else nil.
    static func singleSegment(_ path: String, after prefix: String) -> String? {
        guard path.hasPrefix(prefix) else { return nil }
        let rest = path.dropFirst(prefix.count)
        guard rest.count >= 2, rest.last == "/" else { return nil }
        let segment = rest.dropLast()
        return segment.contains("/") ? nil : String(segment)
    }
}
