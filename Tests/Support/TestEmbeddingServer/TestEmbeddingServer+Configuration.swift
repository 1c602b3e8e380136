/// How the server answers while no fault is scheduled; change it at any time with
/// ``TestEmbeddingServer/configure(_:)``.
extension TestEmbeddingServer {
    public struct Configuration: Sendable {
        /// Vector length when a request sends no `dimensions`. Default 64.
        public var dimensions = 64
        /// The key every request must carry; `nil` (the default): no check. A wrong or missing key
        /// answers 401 with OpenAI's message, which echoes the start and end of the key sent.
        public var apiKey: String?
        /// Where the key is expected: `authorization` (as `Bearer KEY`, the default) or another
        /// header that carries the key as is (Azure's `api-key`).
        public var apiKeyHeader = "authorization"
        /// Time every answer with vectors takes. Default none.
        public var latency: Duration = .zero
        /// Time answer number `n` (0-based, in arrival order) takes, instead of `latency`.
        public var latencyOfRequest: (@Sendable (Int) -> Duration)?
        /// A request whose any input contains this text answers 400 as a whole (as OpenAI does).
        public var poisonMarker: String?
        /// A request with an input of more estimated tokens (``Embedding/TokenEstimate``) answers 400.
        public var maxInputTokens: Int?
        /// A request with more inputs answers 400.
        public var maxInputs: Int?
        /// Answer the vectors in reverse order (each with its right `index`). Default false.
        public var reverseOrder = false
        /// Include `usage` (estimated tokens) in answers. Default true.
        public var reportUsage = true

        public init() {}
    }
}
