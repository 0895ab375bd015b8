import Foundation
import NIOCore
import NIOHTTP1
import Testing

@testable import CredGate

/// The error catalogue (``GatewayError``) is complete, every entry becomes a well-formed problem, and README's
/// error table says exactly what the catalogue does.
@Suite struct ProblemCatalogueTests {
    static let readme = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("README.md")

    /// README's table under "Errors credgate answers itself": code -> status column (`422`, `4xx, 502`).
    static func readmeTable() throws -> [String: [String]] {
        let text = try String(contentsOf: readme, encoding: .utf8)
        let lines = text.components(separatedBy: "\n")
        let header = "| Status | `X-Credgate-Error` | When |"
        let start = try #require(lines.firstIndex(of: header), "README has the error table")
        var table: [String: [String]] = [:]
        for line in lines[(start + 2)...] {
            guard line.hasPrefix("|") else { break }
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            #expect(cells.count >= 4, "row: \(line)")
            guard cells.count >= 4 else { continue }
            let code = cells[2].trimmingCharacters(in: CharacterSet(charactersIn: "`"))
            #expect(table[code] == nil, "\(code) appears once")
            table[code] = cells[1].components(separatedBy: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        }
        return table
    }

    @Test func everyKindHasSamplesOfThatKind() {
        for kind in GatewayError.Kind.allCases {
            let samples = GatewayError.samples(of: kind)
            #expect(!samples.isEmpty, "\(kind)")
            for sample in samples { #expect(sample.kind == kind) }
        }
        let uploadCodes = Set(GatewayError.samples(of: .upload).map(\.code))
        #expect(uploadCodes == Set(UploadRejection.Kind.allCases.map(\.rawValue)))
    }

    @Test func readmeTableMatchesTheCatalogue() throws {
        let table = try Self.readmeTable()
        let catalogue = GatewayError.catalogue
        for error in catalogue {
            let status = Int(error.status.code)
            guard let column = table[error.code] else {
                Issue.record("README's error table has no row for \(error.code)")
                continue
            }
            let matches = column.contains(String(status)) || column.contains("\(status / 100)xx")
            #expect(matches, "README gives \(column) for \(error.code), the catalogue \(status)")
        }
        let codes = Set(catalogue.map(\.code))
        for code in table.keys {
            #expect(codes.contains(code), "README's error table lists \(code), which the catalogue does not have")
        }
    }

    @Test func everyEntryIsAWellFormedProblem() throws {
        var titles: [String: Set<String>] = [:]
        for error in GatewayError.catalogue {
            let response = LocalResponse.problem(error, requestID: "req-1")
            #expect(response.status == error.status)
            #expect(response.headers["content-type"] == ["application/problem+json"])
            #expect(response.headers["x-credgate-error"] == [error.code])
            #expect(response.headers["cache-control"] == ["no-store"])
            let json = try #require(
                try JSONSerialization.jsonObject(with: Data(String(buffer: response.body).utf8)) as? [String: Any],
                "\(error.code)")
            #expect(json["type"] as? String == "urn:credgate:error:\(error.code)")
            #expect(json["status"] as? Int == Int(error.status.code))
            #expect(json["title"] as? String == error.title && !error.title.isEmpty)
            #expect(json["detail"] as? String == error.detail)
            #expect(error.detail.hasSuffix("."), "\(error.code): \(error.detail)")
            #expect(json["request_id"] as? String == "req-1")
            #expect(error.code.allSatisfy { $0.isLowercase || $0 == "-" }, "\(error.code)")
            titles[error.code, default: []].insert(error.title)
        }
        // One title per code, except the two faces of a bad presign request.
        for (code, set) in titles where code != "invalid-presign-request" {
            #expect(set.count == 1, "\(code): \(set)")
        }
    }

    @Test func anUploadRejectionIsTheSameProblemDirectlyOrThroughTheCatalogue() {
        let rejection = UploadRejection.multipleFiles
        let direct = LocalResponse.problem(rejection, requestID: "r")
        let wrapped = LocalResponse.problem(rejection.gatewayError, requestID: "r")
        #expect(direct.status.code == 422 && wrapped.status.code == 422)
        #expect(direct.headers == wrapped.headers)
        #expect(direct.body == wrapped.body)
    }

    @Test func headersThatBelongToAnError() {
        let notAllowed = LocalResponse.problem(
            .methodNotAllowed(method: "PUT", allowed: ["GET", "POST"]), requestID: "r")
        #expect(notAllowed.headers["allow"] == ["GET, POST"])
        let unavailable = LocalResponse.problem(
            .sessionUnavailable(reason: "login circuit open", retryAfterSeconds: 7), requestID: "r")
        #expect(unavailable.status == .serviceUnavailable)
        #expect(unavailable.headers["retry-after"] == ["7"])
        #expect(unavailable.headers["x-credgate-error"] == ["session-unavailable"])
    }

    /// The attach failure's extra members, byte for byte as the endpoint wrote them before the catalogue.
    @Test func attachFailedCarriesWhatTheClientNeedsToFinish() {
        let stored = AttachFailure.StoredUpload(
            upload: Array(#"{"file_url":"s3://b/k.pdf"}"#.utf8), fileURL: "s3://b/k.pdf",
            attachPath: "/credgate/v1/provider-documents", attachBody: #"{"provider":"p"}"#)
        let refused = LocalResponse.problem(
            .attachFailed(.refused(platformStatus: 400, platformAnswer: Array("not json".utf8), stored: stored)),
            requestID: "r")
        #expect(refused.status.code == 400)
        #expect(refused.headers["x-credgate-error"] == ["attach-failed"])
        let detail =
            "The file was uploaded, but the platform refused to attach it to the provider (status 400). Nothing is "
            + "lost: the file is stored at file_url; fix what the platform's answer names and attach it with POST "
            + "/credgate/v1/provider-documents and the body in 'retry'."
        #expect(
            String(buffer: refused.body)
                == #"{"type":"urn:credgate:error:attach-failed","title":"File uploaded but not attached","status":400,"#
                + #""detail":"\#(detail)","request_id":"r","file_url":"s3://b/k.pdf","file":{"file_url":"s3://b/k.pdf"},"#
                + #""platform_status":400,"platform_answer":"not json","retry":{"method":"POST","body":{"provider":"p"}}}"#
        )

        let serverError = GatewayError.attachFailed(.refused(platformStatus: 500, platformAnswer: [], stored: stored))
        #expect(serverError.status == .badGateway)
        let unreachable = GatewayError.attachFailed(.unreachable(reason: "cancelled", stored: stored))
        #expect(unreachable.status == .badGateway && unreachable.detail.contains("(cancelled)"))
        #expect(unreachable.extraMembers.map(\.name) == ["file_url", "file", "retry"])
        let noURL = GatewayError.attachFailed(.noFileURL(uploadStatus: 201, upload: Array("{}".utf8)))
        #expect(noURL.status == .badGateway && noURL.extraMembers == [ProblemMember("file", json: "{}")])
    }

    @Test func aFollowUpFailureNamesNoLibraryText() {
        struct QuotingError: Error, CustomStringConvertible {
            var description: String { "rejected header x-api-key: sk-live-QUOTED" }
        }
        let error = GatewayError.followUpFailed(reason: FollowUpCall.describe(QuotingError()))
        #expect(error.detail == "credgate could not complete this request: QuotingError.")
        #expect(!error.detail.contains("sk-live"))
    }
}
