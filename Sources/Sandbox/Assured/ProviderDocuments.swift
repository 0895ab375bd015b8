import Hummingbird

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// A document associated with a provider (`POST /api/v1/users/provider-documents/`).
struct ProviderDocument: Sendable {
    var id: String
    var provider: String
    var documentName: String?
    var documentType: String?
    var documentURL: String
    var createdAt: String

    /// `presignedDocumentURL` is made fresh for each answer, as the platform's serializer presigns `document_url`
    /// every time it writes a document out.
    func json(presignedDocumentURL: String) -> JSONValue {
        .object([
            ("id", .string(id)),
            ("provider", .string(provider)),
            ("document_name", .optional(documentName)),
            ("document_type", .optional(documentType)),
            ("document_url", .string(documentURL)),
            ("presigned_document_url", .string(presignedDocumentURL)),
            ("created_at", .string(createdAt)),
        ])
    }
}

/// Documents in creation order, bounded like the recorder so a long demo cannot grow it forever.
actor ProviderDocumentStore {
    static let capacity = 10_000
    private var documents: [ProviderDocument] = []

    func add(_ document: ProviderDocument) {
        if documents.count >= Self.capacity { documents.removeFirst() }
        documents.append(document)
    }

    func list(provider: String?) -> [ProviderDocument] {
        guard let provider else { return documents }
        return documents.filter { $0.provider == provider }
    }

    func get(_ id: String) -> ProviderDocument? {
        documents.first { $0.id == id }
    }

    func delete(_ id: String) -> Bool {
        guard let index = documents.firstIndex(where: { $0.id == id }) else { return false }
        documents.remove(at: index)
        return true
    }
}

extension SandboxResponder {
    /// `GET/POST /api/v1/users/provider-documents/` (API key and JWT already checked).
    ///
    /// POST requires `provider` and `document_url` (at most 500 characters); `document_name` and `document_type`
    /// are optional, and the extra fields the SDK sends (`"id": ""`, `"presigned_document_url": ""`, nulls) are
    /// ignored. Any provider id is accepted, listed or not. GET pages like providers-list, filtered by `provider`.
    func providerDocuments(
        _ request: Request, method: HTTPRequest.Method, target: RequestTarget, context: Context,
        recorded: inout RecordedRequest
    ) async throws -> Response {
        switch method {
        case .get:
            let provider = target.parameters.last { $0.name == "provider" }?.value
            let documents = await state.documents.list(provider: provider)
            let settings = await state.presign.values
            let origin = origin(request, context: context)
            return page(
                documents.map { json($0, origin: origin, settings: settings) }, request: request, target: target,
                context: context)
        case .post:
            let body = try await ReadBody.read(request, recorded: &recorded)
            if let status = await state.documentFailures.take() {
                return InjectedFailures.response(status: status, route: "provider-document")
            }
            let object: [String: RequestJSON]
            switch body.jsonObject() {
            case .success(let value): object = value
            case .failure(let error): return error.response
            }
            let required = FieldValidation.requiredStrings(["provider", "document_url"], in: object)
            guard case .success(let fields) = required else { return required.failureResponse }
            guard fields["document_url"]!.count <= 500 else {
                return JSONResponses.fieldError(
                    .badRequest, field: "document_url", "Ensure this field has no more than 500 characters.")
            }
            let document = ProviderDocument(
                id: UUID().uuidString.lowercased(),
                provider: fields["provider"]!,
                documentName: FieldValidation.optionalString("document_name", in: object),
                documentType: FieldValidation.optionalString("document_type", in: object),
                documentURL: fields["document_url"]!,
                createdAt: Date().formatted(.iso8601)
            )
            await state.documents.add(document)
            return JSONResponses.json(
                .created,
                json(document, origin: origin(request, context: context), settings: await state.presign.values))
        default:
            return JSONResponses.methodNotAllowed(request.method, allowed: ["GET", "POST", "HEAD", "OPTIONS"])
        }
    }

    /// `GET/DELETE /api/v1/users/provider-documents/{id}/` (API key and JWT already checked).
    func providerDocument(_ request: Request, method: HTTPRequest.Method, id: String, context: Context) async
        -> Response
    {
        switch method {
        case .get:
            guard let document = await state.documents.get(id) else {
                return JSONResponses.detail(.notFound, "Not found.")
            }
            return JSONResponses.json(
                .ok, json(document, origin: origin(request, context: context), settings: await state.presign.values))
        case .delete:
            return await state.documents.delete(id)
                ? JSONResponses.noContent() : JSONResponses.detail(.notFound, "Not found.")
        default:
            return JSONResponses.methodNotAllowed(request.method, allowed: ["GET", "DELETE", "HEAD", "OPTIONS"])
        }
    }

    /// A document as answered: `presigned_document_url` is a presigned URL of `document_url` when that is an
    /// `s3://` URL (signed like the presign route's, with its current form and lifetime), else "".
    private func json(_ document: ProviderDocument, origin: String, settings: PresignSettings.Values) -> JSONValue {
        var presigned = ""
        if let (bucket, key) = Self.s3Location(document.documentURL) {
            presigned = state.presigner.url(
                origin: origin, bucket: bucket, key: key, form: settings.form,
                lifetime: settings.lifetime, now: Int(Date().timeIntervalSince1970))
        }
        return document.json(presignedDocumentURL: presigned)
    }
}
