/// How the presign route answers, changeable while the sandbox runs (`POST /sandbox/presign`).
actor PresignSettings {
    struct Values: Sendable, Equatable {
        /// Whole seconds, 1 to ``Presigner/maximumLifetime``.
        var lifetime: Int
        var form: PresignForm
        /// Added before every presign answer, so concurrent identical calls overlap (a test of request
        /// coalescing needs them in flight together).
        var delay: Duration = .zero
    }

    private(set) var values: Values

    init(_ values: Values) {
        self.values = values
    }

    /// Changes what is given; nil leaves a setting as it is. Returns the settings now in force.
    func update(lifetime: Int?, form: PresignForm?, delay: Duration?) -> Values {
        if let lifetime { values.lifetime = lifetime }
        if let form { values.form = form }
        if let delay { values.delay = delay }
        return values
    }
}
