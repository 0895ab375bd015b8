import Foundation
import NIOCore

/// The flow's first platform call and what the platform answers to it: the part URLs of a three-step upload,
/// or the one URL of a one-step upload. Plain values, parsed and built here so they can be tested alone.
enum WriftAIUploadStart: Sendable, Equatable {
    /// `POST /uploads` answered `{"id", "urls", "part_size"}`.
    case parts(id: String, urls: [String], partSize: Int)
    /// `POST /files/urls` answered `{"upload_url", "download_url"}`.
    case single(uploadURL: String, downloadURL: String)

    /// The first call's JSON body: `{"size", "mime_type"}`, or SDK 0.28's `{"name", "size", "resource", "mime_type"}`.
    static func requestBody(flow: WriftAIUploadConfig.Flow, filename: String, size: Int, mimeType: String) -> String {
        switch flow {
        case .threeStep:
            return "{\"size\":\(size),\"mime_type\":\(JSONString.quote(mimeType))}"
        case .oneStep:
            return "{\"name\":\(JSONString.quote(filename)),\"size\":\(size),\"resource\":\"prediction\","
                + "\"mime_type\":\(JSONString.quote(mimeType))}"
        }
    }

    /// The platform's answer, or `nil` when it lacks what the flow needs.
    static func parse(_ body: ByteBuffer, flow: WriftAIUploadConfig.Flow) -> WriftAIUploadStart? {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(body.readableBytesView))) as? [String: Any]
        else { return nil }
        switch flow {
        case .threeStep:
            let id = (object["id"] as? String) ?? (object["id"] as? NSNumber).map { $0.stringValue }
            guard let id, !id.isEmpty, let urls = object["urls"] as? [String], !urls.isEmpty,
                let partSize = (object["part_size"] as? NSNumber)?.intValue, partSize > 0
            else { return nil }
            return .parts(id: id, urls: urls, partSize: partSize)
        case .oneStep:
            guard let upload = object["upload_url"] as? String, !upload.isEmpty,
                let download = object["download_url"] as? String
            else { return nil }
            return .single(uploadURL: upload, downloadURL: download)
        }
    }

    /// The `download_url` of the platform's answer to `POST /uploads/{id}/complete`.
    static func downloadURL(inCompleteAnswer body: [UInt8]) -> String? {
        let object = (try? JSONSerialization.jsonObject(with: Data(body))) as? [String: Any]
        return object?["download_url"] as? String
    }

    /// The `complete` call's body: the parts' ETags in part order, exactly as the storage sent them.
    static func completeBody(etags: [String]) -> String {
        "{\"etags\":[" + etags.map(JSONString.quote).joined(separator: ",") + "]}"
    }

    /// credgate's `201` answer: `{"download_url", "id", "size", "mime_type"}` (`id` is `null` in the one-step flow,
    /// which has none).
    static func createdAnswer(downloadURL: String, id: String?, size: Int, mimeType: String) -> LocalResponse {
        let json =
            "{\"download_url\":\(JSONString.quote(downloadURL)),\"id\":\(id.map(JSONString.quote) ?? "null"),"
            + "\"size\":\(size),\"mime_type\":\(JSONString.quote(mimeType))}"
        return .json(.created, json, headers: ["cache-control": "no-store"])
    }
}
