import Logging

/// A static embedding model: token vectors from a matrix, averaged over a text's tokens.
public final class StaticEmbedder: Embedder {
    public var model: String { "" }
    public var dimensions: Int { 0 }
    public var maxBatchSize: Int { 1 }
    public func embed(_ texts: [String]) async throws -> [[Float]] { [] }
    public let configuration: Configuration

    public init(configuration: Configuration, logger: Logger) throws {
        self.configuration = configuration
        throw EmbeddingError(.configuration, "embedder.kind static is not available in this build yet")
    }
}
