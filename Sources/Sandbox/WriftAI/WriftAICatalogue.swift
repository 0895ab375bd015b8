/// The fixed data the sandbox serves: the authenticated user, a list of models and the hardware list, in the
/// shapes of the SDK's `UserWithDetails`, `Model` / `ModelWithDetails` and `Hardware`.
struct WriftAICatalogue: Sendable {
    struct Model: Sendable {
        let owner: String
        let name: String
        let json: JSONValue
        let detailJSON: JSONValue
    }

    static let owner = "sandbox"
    /// 2025-01-01T00:00:00Z, so every answer is the same from one run to the next.
    static let epoch = 1_735_689_600
    static let modelNames = ["echo", "uppercase", "reverse", "word-count", "slow-stream", "sleep", "caption", "embed"]

    let user: JSONValue
    let models: [Model]
    let hardware: [JSONValue]

    init(modelCount: Int) {
        let ownerJSON = JSONValue.object([
            ("account_id", "acc_sandbox0001"),
            ("name", .string(Self.owner)),
            ("avatar_url", "https://avatars.example.invalid/sandbox.png"),
        ])
        user = .object([
            ("account_id", "acc_sandbox0001"),
            ("name", .string(Self.owner)),
            ("avatar_url", "https://avatars.example.invalid/sandbox.png"),
            ("display_name", "credgate sandbox"),
            ("bio", "The WriftAI emulator of credgate's sandbox."),
            ("location", .null),
            ("company", .null),
            ("created_at", .string(S3Encoding.iso8601(epochSeconds: Self.epoch))),
            ("updated_at", .null),
            ("urls", .null),
        ])
        models = (0..<max(0, modelCount)).map { index in
            let name = index < Self.modelNames.count ? Self.modelNames[index] : "model-\(index + 1)"
            let created = S3Encoding.iso8601(epochSeconds: Self.epoch + index * 86_400)
            let fields: [(String, JSONValue)] = [
                ("id", .string("mdl_sandbox\(threeDigits(index + 1))")),
                ("name", .string(name)),
                ("created_at", .string(created)),
                ("visibility", "public"),
                ("description", .string("Sandbox model \(index + 1): \(name).")),
                ("updated_at", .null),
                ("owner", ownerJSON),
                ("predictions_count", .int(index * 7)),
                ("categories", .array([.object([("name", "Text"), ("slug", "text")])])),
                ("cover_image_url", .null),
            ]
            let version = JSONValue.object([
                ("number", 1),
                ("release_notes", "First version."),
                ("created_at", .string(created)),
                (
                    "schemas",
                    .object([
                        (
                            "prediction",
                            .object([
                                ("input", .object([("type", "object")])),
                                ("output", .object([("type", "object")])),
                            ])
                        )
                    ])
                ),
                (
                    "compatibilities",
                    .object([
                        ("openai_chat_completions", false), ("openai_embeddings", false),
                        ("openai_images_generations", false),
                        ("openai_responses", false), ("anthropic_messages", false),
                    ])
                ),
            ])
            let detail =
                fields + [
                    ("overview", .null), ("latest_version", version), ("source_url", .null), ("license_url", .null),
                    ("paper_url", .null),
                ]
            return Model(owner: Self.owner, name: name, json: .object(fields), detailJSON: .object(detail))
        }
        hardware = [
            .object([("name", "CPU"), ("identifier", "cpu"), ("gpus", 0)]),
            .object([("name", "Nvidia L4 GPU"), ("identifier", "gpu-l4"), ("gpus", 1)]),
        ]
    }

    func model(owner: String, name: String) -> Model? {
        models.first { $0.owner == owner && $0.name == name }
    }
}

/// Three digits at least, zero-padded.
private func threeDigits(_ value: Int) -> String {
    let digits = String(value)
    return String(repeating: "0", count: max(0, 3 - digits.count)) + digits
}
