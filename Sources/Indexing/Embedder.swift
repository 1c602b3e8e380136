/// Turns texts into vectors. Implementations batch, limit and retry as their provider needs.
public protocol Embedder: Sendable {
    /// Identifies the model: a document whose stored model differs is re-embedded.
    var model: String { get }
    /// Length of every vector returned.
    var dimensions: Int { get }
    /// Largest number of texts per ``embed(_:)`` call the provider accepts.
    var maxBatchSize: Int { get }
    /// One vector per text, in order.
    func embed(_ texts: [String]) async throws -> [[Float]]
}
