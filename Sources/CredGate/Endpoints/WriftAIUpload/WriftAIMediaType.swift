/// The MIME type WriftAI is told for a file (`mime_type`, and the `Content-Type` of every part), from the name's
/// extension: WriftAI takes any file, and the SDK, too, guesses the type from the name (Python's `mimetypes`).
/// Whether the content really is of that type is checked only for the types credgate recognises by their first
/// bytes (``FileType``: PDF, PNG, JPEG), in ``WriftAIUploadStage``.
enum WriftAIMediaType {
    /// Extensions (lower case, no dot) and their types: the common ones of Python's `mimetypes` table for the
    /// files a model takes (documents, images, audio, video, data).
    static let byExtension: [String: String] = [
        "pdf": "application/pdf", "png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg",
        "gif": "image/gif", "webp": "image/webp", "bmp": "image/bmp", "tif": "image/tiff", "tiff": "image/tiff",
        "svg": "image/svg+xml", "ico": "image/vnd.microsoft.icon", "heic": "image/heic",
        "txt": "text/plain", "md": "text/markdown", "csv": "text/csv", "tsv": "text/tab-separated-values",
        "html": "text/html", "htm": "text/html", "xml": "application/xml", "json": "application/json",
        "jsonl": "application/jsonl", "yaml": "application/yaml", "yml": "application/yaml",
        "zip": "application/zip", "gz": "application/gzip", "tar": "application/x-tar",
        "mp3": "audio/mpeg", "wav": "audio/x-wav", "ogg": "audio/ogg", "flac": "audio/flac", "m4a": "audio/mp4",
        "mp4": "video/mp4", "mov": "video/quicktime", "webm": "video/webm", "avi": "video/x-msvideo",
        "doc": "application/msword", "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "safetensors": "application/octet-stream", "bin": "application/octet-stream",
    ]

    /// The type for a name with an unknown or no extension.
    static let fallback = "application/octet-stream"

    /// The type `filename`'s extension names, or ``fallback``.
    static func of(filename: String) -> String {
        FileType.fileExtension(of: filename).flatMap { byExtension[$0] } ?? fallback
    }
}
