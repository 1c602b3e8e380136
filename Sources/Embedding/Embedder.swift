/// Turns texts into vectors. Implementations batch, limit and retry as their provider needs.
///
/// Guarantees every implementation keeps:
/// - ``embed(_:)`` returns exactly one vector of ``dimensions`` floats per text, in order, or throws.
/// - A provider that is down or rate limited makes calls *wait* (retrying with backoff until the
///   calling task is cancelled); only an input the provider rejects on its own, or an answer that
///   cannot be used, surfaces as an error. The pipeline then isolates the failing texts
///   (``embedEach(_:)``) and records them as dead letters while their neighbours are stored.
public protocol Embedder: Sendable {
    /// Identifies the model: a document whose stored model differs is re-embedded.
    var model: String { get }
    /// Length of every vector returned.
    var dimensions: Int { get }
    /// Most texts per ``embed(_:)`` call the pipeline hands over at once. A provider may split a
    /// call into several requests (by its own input and token limits) and run them concurrently.
    var maxBatchSize: Int { get }
    /// One vector per text, in order.
    func embed(_ texts: [String]) async throws -> [[Float]]
    /// One outcome per text, in order: its vector, or the error that text alone causes. Throws only
    /// when the call as a whole cannot be made (cancellation). The default implementation calls
    /// ``embed(_:)`` and, when it fails, halves the batch until the failing texts stand alone.
    func embedEach(_ texts: [String]) async throws -> [Result<[Float], EmbeddingError>]
    /// Estimated number of tokens of `text` in this embedder's tokenizer: sizes chunks and provider
    /// requests, and prices backfills. The default is ``TokenEstimate/estimate(_:)``.
    func tokenCount(_ text: String) -> Int
    /// Whether the provider answers right now (for status and readiness).
    var health: EmbedderHealth { get }
    /// Counters since start (for metrics and the status page).
    var statistics: EmbedderStatistics { get }
    /// Releases what the embedder holds (connections, threads of its HTTP client). Whoever made
    /// the embedder calls it once, after its last call. The default does nothing.
    func shutdown() async
}

/// Whether an embedder's provider is answering.
public struct EmbedderHealth: Sendable, Equatable, Codable {
    /// `false` while the provider fails (calls are waiting and retrying).
    public var healthy: Bool
    /// The last failure, when unhealthy: what a person should look at.
    public var lastError: String?
    /// Unix seconds of the last successful call, if any.
    public var lastSuccessAt: Double?

    public init(healthy: Bool = true, lastError: String? = nil, lastSuccessAt: Double? = nil) {
        self.healthy = healthy
        self.lastError = lastError
        self.lastSuccessAt = lastSuccessAt
    }

    public static let ok = EmbedderHealth()
}

/// What an embedder has done since start.
public struct EmbedderStatistics: Sendable, Equatable, Codable {
    /// Requests sent to the provider (in-process embedders: calls).
    public var requests = 0
    /// Texts embedded.
    public var inputs = 0
    /// Tokens embedded (the provider's count when it reports one, else the estimate).
    public var tokens = 0
    /// Failed requests (each retry of a failed request counts).
    public var errors = 0
    /// Requests sent again after a failure.
    public var retries = 0
    /// Requests answered 429 (rate limited by the provider).
    public var rateLimited = 0

    public init() {}
}

extension Embedder {
    public func tokenCount(_ text: String) -> Int { TokenEstimate.estimate(text) }

    public var health: EmbedderHealth { .ok }

    public var statistics: EmbedderStatistics { EmbedderStatistics() }

    public func shutdown() async {}

    public func embedEach(_ texts: [String]) async throws -> [Result<[Float], EmbeddingError>] {
        try await EmbeddingIsolation.embedEach(texts, using: { try await self.embed($0) }, dimensions: dimensions)
    }
}

/// Finds the texts of a failing batch that fail on their own, by halving it.
public enum EmbeddingIsolation {
    /// Calls `embed` on `texts`; when it throws, on each half, and so on down to single texts, so
    /// that a batch with one poisoned text costs about 2·log₂(n) extra calls, not n. Cancellation is
    /// rethrown; any other error of a single text is that text's outcome.
    public static func embedEach(
        _ texts: [String], using embed: ([String]) async throws -> [[Float]], dimensions: Int
    ) async throws -> [Result<[Float], EmbeddingError>] {
        guard !texts.isEmpty else { return [] }
        do {
            let vectors = try await embed(texts)
            guard vectors.count == texts.count else {
                throw EmbeddingError(.invalidResponse, "the embedder returned \(vectors.count) vectors for \(texts.count) texts")
            }
            if let wrong = vectors.first(where: { $0.count != dimensions }) {
                throw EmbeddingError(.invalidResponse, "the embedder returned a vector of \(wrong.count) dimensions (expected \(dimensions))")
            }
            return vectors.map { .success($0) }
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            if Task.isCancelled { throw CancellationError() }
            guard texts.count > 1 else {
                return [.failure(error as? EmbeddingError ?? EmbeddingError(.rejectedInput, "\(error)", underlying: error))]
            }
            let middle = texts.count / 2
            let first = try await embedEach(Array(texts[..<middle]), using: embed, dimensions: dimensions)
            let second = try await embedEach(Array(texts[middle...]), using: embed, dimensions: dimensions)
            return first + second
        }
    }
}

/// A tokenizer-free token estimate: about four bytes of English per token, at least one token per
/// word-like run, as OpenAI's guidance for its BPE tokenizers suggests. Over-estimates rather than
/// under-estimates (requests are sized by it).
public enum TokenEstimate {
    public static func estimate(_ text: String) -> Int {
        var bytes = 0
        var words = 0
        var inWord = false
        for byte in text.utf8 {
            bytes += 1
            let isSpace = byte == 0x20 || byte == 0x0A || byte == 0x09 || byte == 0x0D
            if !isSpace && !inWord { words += 1 }
            inWord = !isSpace
        }
        return max(words, (bytes + 3) / 4)
    }
}
