/// The one error type of the `Embedding` module.
public struct EmbeddingError: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let rawValue: String
        public init(_ rawValue: String) { self.rawValue = rawValue }
        public var description: String { rawValue }

        /// The provider refused these inputs on their own (e.g. HTTP 400 for one text): retrying the
        /// same input will not help. Such texts become dead letters.
        public static let rejectedInput = Code("rejected-input")
        /// The provider is unreachable, overloaded or rate limiting. Embedders retry these themselves;
        /// one surfaces only when retries are bounded.
        public static let unavailable = Code("unavailable")
        /// The provider's answer cannot be used (wrong count, wrong dimensions, not JSON).
        public static let invalidResponse = Code("invalid-response")
        /// The embedder is configured wrongly (missing model file, unknown tokenizer, no API key):
        /// start-up stops with the fix.
        public static let configuration = Code("configuration")
    }

    public var code: Code
    public var message: String
    public var underlying: (any Error)?

    public init(_ code: Code, _ message: String, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.underlying = underlying
    }

    public var description: String {
        var text = "\(code): \(message)"
        if let underlying { text += " [caused by: \(underlying)]" }
        return text
    }
}
