import AsyncHTTPClient
import Foundation
import Logging
import Synchronization

/// Embeds through any OpenAI-compatible `POST {url}/embeddings` API: OpenAI, Azure OpenAI, Ollama,
/// vLLM, text-embeddings-inference, LM Studio, LiteLLM, …
///
/// Guarantees:
/// - **Order and shape.** ``embedEach(_:)`` returns one outcome per text, in order; every vector has
///   ``dimensions`` floats (the configured number, else the length of the provider's first answer,
///   fixed from then on; an answer of another length fails its inputs with `invalidResponse`).
/// - **Within the provider's limits.** A call is cut into requests of at most `maxInputs` texts and
///   `maxRequestTokens` estimated tokens, sent concurrently but never more than `concurrency` at
///   once, never faster than `requestsPerMinute` and `tokensPerMinute` (see ``RequestBudget``), and
///   first come, first served across concurrent calls. A text over `maxInputTokens` is rejected
///   unsent.
/// - **Waits out failures.** Rate limits (429), provider errors (5xx), timeouts and connection
///   failures are retried with exponential backoff and full jitter, honouring `Retry-After`; a
///   rejected key, URL or model (401, 403, 404) is retried too (at most `maxBackoff` apart) and
///   reported in ``health`` and a warning. With `maxAttempts` `nil` (the default) a call waits until
///   the provider answers or its task is cancelled: an outage pauses the pipeline and never
///   dead-letters a row. Cancellation is prompt: a cancelled call stops waiting and sending.
/// - **One bad input fails alone.** When the provider rejects a request (400, 413, 422), that
///   request alone is halved until the rejected texts stand alone; they fail with `rejectedInput`
///   and the provider's message, every other text gets its vector.
/// - **The key stays secret.** It is sent only in its header; it is never logged, and removed from
///   every error message (also where a provider echoes part of it).
///
/// Safe to call from many tasks at once; one HTTP client (connection pool) serves them all.
/// **Lifetime:** whoever makes the embedder calls ``shutdown()`` when done with it (the agent when
/// its run ends, a command when it returns, a test at its end). An embedder released without it
/// shuts its client down in the background, so nothing leaks or traps, but in-flight work is gone.
public final class OpenAIEmbedder: Embedder {
    public let configuration: Configuration
    public var model: String { configuration.model }
    /// The vector length: configured, else learnt from the provider's first answer (0 before it).
    public var dimensions: Int { state.withLock { $0.dimensions ?? 0 } }
    /// Enough texts to fill every request slot: `maxInputs × concurrency`, at most 8192.
    public let maxBatchSize: Int

    let logger: Logger
    let client: HTTPClient
    let gate: RequestGate
    let retry: RetryPolicy
    let redaction: SecretRedaction
    /// `{url}/embeddings` (with the URL's query, e.g. Azure's `api-version`).
    let endpoint: String
    /// The endpoint without query or credentials, for messages and logs.
    let endpointDescription: String
    let headers: [(String, String)]
    /// The most estimated tokens of one input and of one request, after the budgets.
    let maxInputTokens: Int
    let maxRequestTokens: Int

    struct State: Sendable {
        var status = ProviderStatus()
        var dimensions: Int?
        var shutDown = false
    }

    let state: Mutex<State>

    /// - Throws: ``EmbeddingError`` `configuration` when a setting cannot work (not an http(s) URL,
    ///   a limit below 1, `sendDimensions` without `dimensions`, OpenAI without a key), with the fix.
    public init(configuration: Configuration, logger: Logger) throws {
        let endpoint = try Self.endpoint(configuration.url)
        try Self.validate(configuration, host: endpoint.host)
        self.configuration = configuration
        self.logger = logger
        self.endpoint = endpoint.url
        self.endpointDescription = endpoint.description
        redaction = SecretRedaction(configuration.apiKey)
        retry = RetryPolicy(initialBackoff: configuration.initialBackoff, maxBackoff: configuration.maxBackoff, maxAttempts: configuration.maxAttempts)
        gate = RequestGate(configuration: .init(
            requestsPerMinute: configuration.requestsPerMinute, tokensPerMinute: configuration.tokensPerMinute,
            concurrency: configuration.concurrency, maxInputTokens: configuration.maxInputTokens))
        maxInputTokens = min(configuration.maxInputTokens, configuration.maxRequestTokens)
        maxRequestTokens = min(configuration.maxRequestTokens, gate.maxRequestTokens ?? .max)
        maxBatchSize = min(8_192, configuration.maxInputs * configuration.concurrency)
        var headers = [("content-type", "application/json"), ("accept", "application/json"), ("user-agent", "tidemark")]
        if let key = configuration.apiKey, !key.isEmpty {
            let name = configuration.apiKeyHeader ?? "authorization"
            headers.append(name.lowercased() == "authorization" ? ("authorization", "Bearer \(key)") : (name, key))
        }
        self.headers = headers
        state = Mutex(State(dimensions: configuration.dimensions))

        var http = HTTPClient.Configuration()
        http.redirectConfiguration = .disallow
        http.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = max(8, configuration.concurrency)
        // Connection failures come back at once; the retry loop here waits and tries again, so an
        // outage is probed at the configured backoff and its end noticed within it.
        http.connectionPool.retryConnectionEstablishment = false
        let connect = min(configuration.timeout, .seconds(10))
        http.timeout = .init(connect: .milliseconds(max(1, Int64(connect.seconds * 1_000))))
        client = HTTPClient(eventLoopGroup: HTTPClient.defaultEventLoopGroup, configuration: http, backgroundActivityLogger: logger)
        logger.debug("embedder ready", metadata: [
            "embedder.model": "\(configuration.model)", "embedder.url": "\(endpointDescription)",
            "embedder.concurrency": "\(configuration.concurrency)",
        ])
    }

    deinit {
        let alreadyShutDown = state.withLock { $0.shutDown }
        if !alreadyShutDown { client.shutdown { _ in } }
    }

    /// Closes the connections and stops the client. Idempotent; call it once no call is running
    /// (a call made afterwards fails with `unavailable`).
    public func shutdown() async {
        let first = state.withLock { state in
            defer { state.shutDown = true }
            return !state.shutDown
        }
        guard first else { return }
        do {
            try await client.shutdown()
        } catch {
            logger.debug("embedder client shutdown failed", metadata: ["error.message": "\(error)"])
        }
    }

    public var health: EmbedderHealth { state.withLock { $0.status.health } }

    public var statistics: EmbedderStatistics { state.withLock { $0.status.statistics } }

    /// An estimate (``TokenEstimate``): about four bytes per token, at least one per word. It sizes
    /// requests and prices backfills well enough; OpenAI's own count (cl100k/o200k BPE) differs by
    /// some percent and would need the real tokenizer. The provider's `usage` corrects the
    /// tokens-per-minute budget after each answer.
    public func tokenCount(_ text: String) -> Int { TokenEstimate.estimate(text) }

    /// One vector per text, in order; throws the first text's error if any text fails.
    public func embed(_ texts: [String]) async throws -> [[Float]] {
        let outcomes = try await embedEach(texts)
        var vectors: [[Float]] = []
        vectors.reserveCapacity(texts.count)
        for (position, outcome) in outcomes.enumerated() {
            switch outcome {
            case .success(let vector): vectors.append(vector)
            case .failure(let error):
                throw EmbeddingError(error.code, "text \(position + 1) of \(texts.count): \(error.message)", underlying: error.underlying)
            }
        }
        return vectors
    }

    /// One outcome per text, in order. Throws only `CancellationError` (the calling task was
    /// cancelled) or `unavailable` after ``shutdown()``.
    public func embedEach(_ texts: [String]) async throws -> [Result<[Float], EmbeddingError>] {
        guard !texts.isEmpty else { return [] }
        if state.withLock({ $0.shutDown }) {
            throw EmbeddingError(.unavailable, "the embedder was shut down")
        }
        let plan = RequestPlan(texts, tokenCount: tokenCount, maxInputs: configuration.maxInputs, maxRequestTokens: maxRequestTokens, maxInputTokens: maxInputTokens)
        var outcomes = [Result<[Float], EmbeddingError>](
            repeating: .failure(EmbeddingError(.invalidResponse, "no answer for this text")), count: texts.count)
        for (position, tokens) in plan.oversized {
            outcomes[position] = .failure(EmbeddingError(.rejectedInput, "the text has about \(tokens) tokens, more than embedder.max_input_tokens (\(maxInputTokens)); it was not sent (content is chunked to chunking.max_tokens before embedding: lower that)"))
        }
        if plan.batches.count == 1, let batch = plan.batches.first {
            let results = try await perform(batch)
            for (position, result) in zip(batch.positions, results) { outcomes[position] = result }
            return outcomes
        }
        try await withThrowingTaskGroup(of: (RequestPlan.Batch, [Result<[Float], EmbeddingError>]).self) { group in
            for batch in plan.batches {
                group.addTask { (batch, try await self.perform(batch)) }
            }
            for try await (batch, results) in group {
                for (position, result) in zip(batch.positions, results) { outcomes[position] = result }
            }
        }
        return outcomes
    }
}
