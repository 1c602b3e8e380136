import Logging

/// Embeds through any OpenAI-compatible `POST {url}/embeddings` API.
public final class OpenAIEmbedder: Embedder {
    public var model: String { "" }
    public var dimensions: Int { 0 }
    public var maxBatchSize: Int { 1 }
    public func embed(_ texts: [String]) async throws -> [[Float]] { [] }
    public let configuration: Configuration

    public init(configuration: Configuration, logger: Logger) throws {
        self.configuration = configuration
        throw EmbeddingError(.configuration, "embedder.kind openai is not available in this build yet")
    }
}
