import Foundation
import Logging
import Synchronization

/// A static embedding model, in process: each text's tokens (a Hugging Face `tokenizer.json`, see
/// ``Tokenizer``) index rows of a token-embedding matrix (a safetensors file); the rows are averaged
/// and the mean is scaled to length 1. The default is wordllama's `l2_supercat_256` (32 000 tokens ×
/// 256 dimensions), fetched by `Scripts/fetch-model.sh`.
///
/// Guarantees:
/// - The same vectors as the reference (`wordllama`'s `WordLlamaInference.embed(texts, norm=True)`):
///   the same token ids, no special tokens, an unweighted mean; cosine ≥ 0.9999 on the parity set.
///   A text without tokens (the empty text) embeds to the zero vector, where the reference divides
///   by zero and returns NaN.
/// - Semantic, offline and deterministic: no network, no Python; loading reads each file once and
///   checks it (a missing, truncated or malformed file is an ``EmbeddingError/Code/configuration``
///   error with the fix, at start, never a crash).
/// - ``model`` names the weights file and a fingerprint of both files' contents, so pointing the
///   configuration at another model (or another version of it) re-embeds every document.
/// - ``tokenCount(_:)`` is the real number of tokens (chunking and cost estimates use it).
/// - Never fails on an input: every text has a vector.
public final class StaticEmbedder: Embedder {
    /// The files this embedder was loaded from.
    public let configuration: Configuration
    /// `static:<weights file name>@<fingerprint of the weights and tokenizer files>`, e.g.
    /// `static:l2_supercat_256@545578ac`.
    public let model: String
    /// Columns of the matrix (256 for the default model).
    public let dimensions: Int
    /// Texts per call the pipeline hands over; large calls are spread over all cores.
    public let maxBatchSize = 1_024
    /// The tokenizer read from ``Configuration/tokenizer``.
    public let tokenizer: Tokenizer
    let matrix: EmbeddingMatrix
    private let counters = Mutex(EmbedderStatistics())
    private let logger: Logger

    /// Calls with at least this many texts are split across cores.
    static let parallelThreshold = 64

    /// Loads the matrix and the tokenizer named by `configuration` (relative paths are relative to
    /// the working directory). Throws ``EmbeddingError/Code/configuration`` with the fix when a file
    /// is missing, unreadable, truncated or malformed, when the tokenizer is of an unsupported kind,
    /// or when the tokenizer's ids do not fit the matrix.
    public init(configuration: Configuration, logger: Logger) throws(EmbeddingError) {
        let started = ContinuousClock.now
        self.configuration = configuration
        self.logger = logger
        let fetchHint = "run Scripts/fetch-model.sh to download the default model (wordllama from PyPI) into models/wordllama, or point embedder.weights and embedder.tokenizer at your files"

        let tokenizerBytes = try Self.read(configuration.tokenizer, role: "embedder.tokenizer", hint: fetchHint)
        do {
            tokenizer = try Tokenizer(json: tokenizerBytes)
        } catch {
            throw EmbeddingError(
                .configuration, "embedder.tokenizer \(configuration.tokenizer): \(error.message) (\(fetchHint))", underlying: error.underlying)
        }

        let weightsData = try Self.map(configuration.weights, hint: fetchHint)
        let loaded: Result<(EmbeddingMatrix, UInt64), EmbeddingError> = weightsData.withUnsafeBytes { bytes in
            Result { () throws(EmbeddingError) in
                let file = try SafetensorsFile(bytes)
                let tensor = try file.matrixTensor(named: configuration.tensor)
                return (try EmbeddingMatrix(tensor, in: bytes), Self.fingerprint(bytes, seed: 0x7469_6465))
            }
        }
        let weightsFingerprint: UInt64
        do {
            (matrix, weightsFingerprint) = try loaded.get()
        } catch {
            throw EmbeddingError(.configuration, "embedder.weights \(configuration.weights): \(error.message) (\(fetchHint))", underlying: error.underlying)
        }
        guard tokenizer.idLimit <= matrix.rows else {
            throw EmbeddingError(
                .configuration,
                "embedder.tokenizer \(configuration.tokenizer) has ids up to \(tokenizer.idLimit - 1) but the matrix in \(configuration.weights) has \(matrix.rows) rows: the two files belong to different models")
        }
        dimensions = matrix.columns

        let tokenizerFingerprint = tokenizerBytes.withUnsafeBytes { Self.fingerprint($0, seed: 0x6d61_726b) }
        model = Self.modelID(
            weights: configuration.weights, tensor: configuration.tensor, weightsFingerprint: weightsFingerprint,
            tokenizerFingerprint: tokenizerFingerprint)

        let elapsed = ContinuousClock.now - started
        logger.info(
            "static embedding model loaded",
            metadata: [
                "embedder.model": "\(model)", "embedder.rows": "\(matrix.rows)", "embedder.dimensions": "\(dimensions)",
                "embedder.tokenizer": "\(tokenizer.summary)",
                "embedder.load_ms": "\(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)",
            ])
    }

    /// One vector per text, in order (see the type's guarantees). Calls of at least
    /// ``parallelThreshold`` texts run on all cores.
    public func embed(_ texts: [String]) async throws -> [[Float]] {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let parts = min(cores, texts.count / (Self.parallelThreshold / 2))
        var tokens = 0
        var vectors: [[Float]]
        if parts <= 1 {
            vectors = []
            vectors.reserveCapacity(texts.count)
            for text in texts {
                let (vector, count) = embedOne(text)
                vectors.append(vector)
                tokens += count
            }
        } else {
            vectors = [[Float]](repeating: [], count: texts.count)
            let size = (texts.count + parts - 1) / parts
            try await withThrowingTaskGroup(of: (Int, [[Float]], Int).self) { group in
                for start in stride(from: 0, to: texts.count, by: size) {
                    let slice = texts[start..<min(start + size, texts.count)]
                    group.addTask {
                        try Task.checkCancellation()
                        var part: [[Float]] = []
                        part.reserveCapacity(slice.count)
                        var partTokens = 0
                        for text in slice {
                            let (vector, count) = self.embedOne(text)
                            part.append(vector)
                            partTokens += count
                        }
                        return (start, part, partTokens)
                    }
                }
                for try await (start, part, partTokens) in group {
                    vectors.replaceSubrange(start..<start + part.count, with: part)
                    tokens += partTokens
                }
            }
        }
        counters.withLock { statistics in
            statistics.requests += 1
            statistics.inputs += texts.count
            statistics.tokens += tokens
        }
        return vectors
    }

    /// The vector of one text (synchronous; the same as ``embed(_:)``'s).
    public func vector(_ text: String) -> [Float] { embedOne(text).vector }

    /// The vector of `text` and its number of tokens.
    func embedOne(_ text: String) -> (vector: [Float], tokens: Int) {
        let ids = tokenizer.encode(text)
        let columns = dimensions
        let vector = [Float](unsafeUninitializedCapacity: columns) { buffer, initialized in
            buffer.initialize(repeating: 0)
            initialized = columns
            guard !ids.isEmpty else { return }
            matrix.addRows(ids, into: buffer)
            // The mean, as the reference computes it, then length 1.
            let count = Float(ids.count)
            var squares: Float = 0
            for index in 0..<columns {
                buffer[index] /= count
                squares += buffer[index] * buffer[index]
            }
            guard squares > 0 else { return }
            let scale = 1 / squares.squareRoot()
            for index in 0..<columns { buffer[index] *= scale }
        }
        return (vector, ids.count)
    }

    /// The number of tokens of `text` in this model's tokenizer (no special tokens).
    public func tokenCount(_ text: String) -> Int { tokenizer.count(text) }

    /// In process: always healthy.
    public var health: EmbedderHealth { .ok }

    /// Calls, texts and tokens embedded since start.
    public var statistics: EmbedderStatistics { counters.withLock { $0 } }
}
