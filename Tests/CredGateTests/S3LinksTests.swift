import Foundation
import Testing

@testable import CredGate

/// The pure pieces of the S3 links: request parsing, key and name sanitising, UUID names, answers; and the
/// `aws_sigv4` / `endpoints.s3` configuration.
@Suite struct S3LinksTests {
    static let config: S3Config = {
        var c = S3Config(bucket: "app-bucket")
        c.keyPrefix = "uploads/"
        return c
    }()

    static func parse(_ json: String) throws(S3LinkRequest.Problem) -> S3LinkRequest {
        try S3LinkRequest.parse(
            json: Array(json.utf8), config: config,
            newName: {
                S3ObjectName.newKey(
                    for: $0, prefix: "", uuid: UUID(uuidString: "4F0C2D9B-7E11-4A55-9C3D-1E2F3A4B5C6D")!)
            })
    }

    @Test func uploadWithAFilenameGetsAUUIDKeepingTheExtension() throws {
        let r = try Self.parse(#"{"operation": "upload", "filename": "C:\\docs\\scan.Final.pdf"}"#)
        #expect(r.key == "uploads/4f0c2d9b-7e11-4a55-9c3d-1e2f3a4b5c6d.pdf")
        #expect(r.contentType == "application/octet-stream")
        #expect(r.expiresIn == 900)
        #expect(r.operation.method == "PUT")
    }

    @Test func namesAreSanitised() {
        #expect(S3ObjectName.sanitised("../../etc/passwd") == "passwd")
        #expect(S3ObjectName.sanitised(".bashrc") == "bashrc")
        #expect(S3ObjectName.sanitised("a/b\\c\u{0}d.txt") == "cd.txt")
        #expect(S3ObjectName.sanitised("...") == nil)
        #expect(S3ObjectName.sanitised("dir/") == nil)
        #expect(S3ObjectName.fileExtension(of: "noext") == nil)
        #expect(S3ObjectName.fileExtension(of: "archive.tar.gz") == "gz")
        #expect(S3ObjectName.fileExtension(of: "weird.p d f") == nil)
        let bare = S3ObjectName.newKey(for: "README", prefix: "p/")!
        #expect(bare.hasPrefix("p/") && bare.count == 2 + 36 && !bare.dropFirst(2).contains("."))
    }

    @Test func expiryForms() throws {
        #expect(try Self.parse(#"{"operation": "download", "key": "uploads/a", "expire_minutes": 5}"#).expiresIn == 300)
        #expect(
            try Self.parse(#"{"operation": "download", "key": "uploads/a", "expires_in": 604800}"#).expiresIn == 604800)
        for bad in [
            #""expires_in": 0"#, #""expires_in": -1"#, #""expires_in": 604801"#, #""expires_in": "60""#,
            #""expires_in": true"#, #""expire_minutes": 0"#, #""expires_in": 2.5"#,
        ] {
            #expect(throws: S3LinkRequest.Problem.self) {
                try Self.parse(#"{"operation": "download", "key": "uploads/a", "# + bad + "}")
            }
        }
    }

    @Test func keysOutsideThePrefixOrWithDotSegmentsAreRefused() {
        for key in ["other/a", "uploads/../x", "uploads//x", "/uploads/x", "uploads/./x", "uploads/", "uploads/a\u{7}"]
        {
            #expect(throws: S3LinkRequest.Problem.self) { try S3LinkRequest.checkKey(key, config: Self.config) }
        }
        #expect(throws: Never.self) { try S3LinkRequest.checkKey("uploads/a b+c/ü.pdf", config: Self.config) }
    }

    @Test func downloadOptionsBecomeResponseParameters() throws {
        let r = try Self.parse(
            #"{"operation": "download", "key": "uploads/a.pdf", "download_filename": "../Quarterly report.pdf", "content_type": "application/pdf"}"#
        )
        #expect(r.downloadFilename == "Quarterly report.pdf")
        let signer = S3LinkSigner(
            credentials: .init(accessKeyID: "AKID", secretAccessKey: Secret("s"), region: "us-east-1"),
            endpoint: .aws(region: "us-east-1"), config: Self.config)
        let link = try signer.sign(r, at: Date(timeIntervalSince1970: 1_700_000_000))
        #expect(
            link.url.hasPrefix(
                "https://s3.us-east-1.amazonaws.com/app-bucket/uploads/a.pdf?response-content-disposition=attachment%3B%20filename%3D%22Quarterly%20report.pdf%22&response-content-type=application%2Fpdf&X-Amz-Algorithm="
            ))
        #expect(S3LinkSigner.attachment("résumé.pdf") == "attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf")
        let json = S3LinkSigner.answer(url: link.url, method: "GET", key: r.key, expiresAt: link.expiresAt, headers: [])
        #expect(json.contains(#""expires_at":"2023-11-14T22:28:20Z""#))
    }

    @Test func virtualHostLinks() throws {
        var config = Self.config
        config.addressing = .virtualHost
        let signer = S3LinkSigner(
            credentials: .init(accessKeyID: "AKID", secretAccessKey: Secret("s"), region: "eu-west-1"),
            endpoint: .aws(region: "eu-west-1"), config: config)
        let link = try signer.sign(
            S3LinkRequest(operation: .remove, key: "uploads/x", expiresIn: 60),
            at: Date(timeIntervalSince1970: 1_700_000_000))
        #expect(link.url.hasPrefix("https://app-bucket.s3.eu-west-1.amazonaws.com/uploads/x?X-Amz-Algorithm="))
        #expect(link.method == "DELETE")
    }

    // MARK: - Configuration

    static let yaml = """
        listen: {port: 0}
        upstreams:
          s3: {url: "${S3_ENDPOINT_URL:-https://s3.${AWS_REGION:-${AWS_DEFAULT_REGION:-us-east-1}}.amazonaws.com}"}
        credentials:
          aws:
            kind: aws_sigv4
            access_key_id: ${AWS_ACCESS_KEY_ID}
            secret_access_key: ${AWS_SECRET_ACCESS_KEY}
            session_token: ${AWS_SESSION_TOKEN:-}
            region: ${AWS_REGION:-${AWS_DEFAULT_REGION}}
        routes:
          - {name: s3, path: /**, upstream: s3, credentials: [aws]}
        endpoints:
          s3: {bucket: "${S3_BUCKET}", key_prefix: uploads/, link_lifetime: 5m}
        """

    @Test func theStandardAWSVariablesAreRead() throws {
        let config = try ConfigLoader.parse(
            yaml: Self.yaml,
            environment: [
                "AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY_FILE": "/run/secrets/aws",
                "AWS_DEFAULT_REGION": "eu-central-1",
                "S3_BUCKET": "b-1",
            ], readFile: { _ in "from-file\n" })
        guard case .awsSigV4(let c)? = config.credentials["aws"]?.kind else {
            Issue.record("no aws credential")
            return
        }
        #expect(
            c.secretAccessKey.reveal() == "from-file" && c.sessionToken == nil && c.region == "eu-central-1"
                && c.service == "s3")
        #expect(config.upstreams["s3"]?.url.host == "s3.eu-central-1.amazonaws.com")
        #expect(config.endpoints.s3?.bucket == "b-1" && config.endpoints.s3?.defaultLifetime == 300)
        let withRegion = try ConfigLoader.parse(
            yaml: Self.yaml,
            environment: [
                "AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "ap-south-1",
                "AWS_DEFAULT_REGION": "eu-central-1",
                "AWS_SESSION_TOKEN": "tok", "S3_BUCKET": "b-1", "S3_ENDPOINT_URL": "http://127.0.0.1:9000",
            ])
        guard case .awsSigV4(let c2)? = withRegion.credentials["aws"]?.kind else {
            Issue.record("no aws credential")
            return
        }
        #expect(c2.region == "ap-south-1" && c2.sessionToken?.reveal() == "tok")
        #expect(withRegion.upstreams["s3"]?.url.port == 9000)
    }

    @Test func problemsHaveTheirYAMLPaths() {
        let yaml = Self.yaml.replacingOccurrences(
            of: "link_lifetime: 5m", with: "link_lifetime: 8d, addressing: sideways, extra_buckets: [Bad_Name]")
        do {
            _ = try ConfigLoader.parse(
                yaml: yaml,
                environment: [
                    "AWS_ACCESS_KEY_ID": "AK ID", "AWS_SECRET_ACCESS_KEY": "", "AWS_REGION": "EU", "S3_BUCKET": "b-1",
                ])
            Issue.record("accepted")
        } catch {
            let text = error.issues.map { "\($0.path): \($0.message)" }.joined(separator: "\n")
            #expect(text.contains("credentials.aws.access_key_id: is not an access key id"))
            #expect(text.contains("credentials.aws.secret_access_key: is empty"))
            #expect(text.contains("credentials.aws.region:"))
            #expect(text.contains("endpoints.s3.addressing: expected path or virtual"))
            #expect(text.contains("endpoints.s3.extra_buckets[0]:"))
            #expect(!text.contains("AK ID"))
        }
    }

    @Test func anAWSRouteNeedsEndpointsS3AndABareEndpoint() {
        let noS3 = Self.yaml.components(separatedBy: "endpoints:")[0]
        let env = [
            "AWS_ACCESS_KEY_ID": "AKID", "AWS_SECRET_ACCESS_KEY": "s", "AWS_REGION": "eu-west-1", "S3_BUCKET": "b-1",
            "S3_ENDPOINT_URL": "https://minio.example/base",
        ]
        do {
            _ = try ConfigLoader.parse(yaml: noS3, environment: env)
            Issue.record("accepted")
        } catch {
            let paths = error.issues.map(\.path)
            #expect(paths.contains("routes[0].credentials"))
            #expect(paths.contains("upstreams.s3.url"))
        }
    }
}
