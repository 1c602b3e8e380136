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
