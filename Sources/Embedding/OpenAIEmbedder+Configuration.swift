import Foundation

/// Settings of ``OpenAIEmbedder``, one field per configuration key of `embedder` (kind `openai`).
extension OpenAIEmbedder {
    public struct Configuration: Sendable, Equatable {
        /// Base URL of the API, up to and including the version: `https://api.openai.com/v1`,
        /// `http://localhost:11434/v1` (Ollama), … Requests go to `{url}/embeddings`.
        public var url: String
        /// Model name sent with each request and recorded with each document.
        public var model: String
        /// Vector length. Sent as `dimensions` when `sendDimensions` is set (models that can shorten
        /// their vectors); otherwise learnt from the provider's first answer when `nil`.
        public var dimensions: Int?
        /// Whether to send `dimensions` in requests. Default: when `dimensions` is set.
        public var sendDimensions: Bool?
        /// The API key (read from `api_key_env` or `api_key_file`, never from the YAML; never printed).
        public var apiKey: String?
        /// The header that carries the key: `nil` or `Authorization` (the default) sends
        /// `Authorization: Bearer KEY`; any other name (Azure OpenAI's `api-key`) sends the key as is.
        public var apiKeyHeader: String?
        /// Longest a request may take before it counts as failed (and is retried). Default 60 s.
        public var timeout: Duration = .seconds(60)
        /// Most inputs in one request. Default 2048 (OpenAI's limit).
        public var maxInputs = 2_048
        /// Most tokens of one input. Default 8192 (OpenAI's limit); longer content is chunked before.
        public var maxInputTokens = 8_192
        /// Most tokens in one request. Default 300 000 (OpenAI's limit).
        public var maxRequestTokens = 300_000
        /// Requests per minute the provider allows; `nil`: no limit.
        public var requestsPerMinute: Int?
        /// Tokens per minute the provider allows; `nil`: no limit.
        public var tokensPerMinute: Int?
        /// Requests in flight at once. Default 4.
        public var concurrency = 4
        /// First wait after a failure; doubled each attempt, with jitter, up to `maxBackoff`. Default 500 ms.
        public var initialBackoff: Duration = .milliseconds(500)
        /// Longest wait between attempts. Default 30 s.
        public var maxBackoff: Duration = .seconds(30)
        /// Attempts of a request that fails transiently before the error surfaces; `nil` (the
        /// default): retry until cancelled, so that an outage pauses the pipeline instead of
        /// dead-lettering rows.
        public var maxAttempts: Int?
        /// Price in US dollars per million input tokens, for estimates. Default: none.
        public var pricePerMillionTokens: Double?

        public init(url: String, model: String) {
            self.url = url
            self.model = model
        }
    }
}

extension OpenAIEmbedder {
    /// The request URL `{url}/embeddings` (a query in `url`, such as Azure's `?api-version=…`, is
    /// kept after the path), its host, and a form for messages without query or credentials.
    static func endpoint(_ url: String) throws(EmbeddingError) -> (url: String, host: String, description: String) {
        guard var components = URLComponents(string: url.trimmingCharacters(in: .whitespaces)),
            let scheme = components.scheme?.lowercased(), scheme == "http" || scheme == "https",
            let host = components.host, !host.isEmpty
        else {
            throw EmbeddingError(.configuration, "embedder.url '\(SecretRedaction(nil).apply(url))' is not an http:// or https:// URL; use the API's base URL, e.g. https://api.openai.com/v1")
        }
        while components.path.hasSuffix("/") { components.path.removeLast() }
        if components.path.hasSuffix("/embeddings") { components.path.removeLast("/embeddings".count) }
        components.path += "/embeddings"
        guard let full = components.string else {
            throw EmbeddingError(.configuration, "embedder.url '\(url)' cannot be extended by /embeddings")
        }
        var shown = components
        shown.user = nil
        shown.password = nil
        shown.query = nil
        return (full, host, shown.string ?? "\(scheme)://\(host)")
    }

    /// Refuses settings that cannot work, with the fix.
    static func validate(_ configuration: Configuration, host: String) throws(EmbeddingError) {
        func positive(_ value: Int, _ key: String) throws(EmbeddingError) {
            guard value >= 1 else { throw EmbeddingError(.configuration, "embedder.\(key) must be at least 1 (it is \(value))") }
        }
        guard !configuration.model.isEmpty else {
            throw EmbeddingError(.configuration, "embedder.model is empty: name the embedding model, e.g. text-embedding-3-small")
        }
        if let dimensions = configuration.dimensions { try positive(dimensions, "dimensions") }
        if configuration.sendDimensions == true, configuration.dimensions == nil {
            throw EmbeddingError(.configuration, "embedder.send_dimensions is true but embedder.dimensions is not set: set the vector length to ask for")
        }
        try positive(configuration.maxInputs, "max_inputs")
        try positive(configuration.maxInputTokens, "max_input_tokens")
        try positive(configuration.maxRequestTokens, "max_request_tokens")
        try positive(configuration.concurrency, "concurrency")
        if let value = configuration.requestsPerMinute { try positive(value, "requests_per_minute") }
        if let value = configuration.tokensPerMinute { try positive(value, "tokens_per_minute") }
        if let value = configuration.maxAttempts { try positive(value, "max_attempts") }
        guard configuration.timeout > .zero else {
            throw EmbeddingError(.configuration, "embedder.timeout must be longer than zero")
        }
        guard configuration.initialBackoff >= .zero, configuration.maxBackoff >= .zero else {
            throw EmbeddingError(.configuration, "embedder.initial_backoff and embedder.max_backoff cannot be negative")
        }
        if let header = configuration.apiKeyHeader, header.isEmpty || header.contains(where: { $0 == ":" || $0.isWhitespace }) {
            throw EmbeddingError(.configuration, "embedder.api_key_header '\(header)' is not a header name; use authorization (Bearer) or e.g. api-key (Azure OpenAI)")
        }
        let key = configuration.apiKey ?? ""
        if key.isEmpty, host.lowercased() == "api.openai.com" || host.lowercased().hasSuffix(".openai.azure.com") {
            throw EmbeddingError(.configuration, "\(host) needs an API key: set embedder.api_key_env to the variable that holds it (e.g. OPENAI_API_KEY), or embedder.api_key_file")
        }
        if key.contains(where: { $0.isNewline }) {
            throw EmbeddingError(.configuration, "the API key contains a line break; check the variable or file it comes from")
        }
    }
}
