/// What embedding a workload through an OpenAI-compatible provider would take, before anything is
/// spent: requests, time at the configured budgets and concurrency, and cost.
///
/// The figures are estimates: tokens come from ``Embedder/tokenCount(_:)`` (itself an estimate for
/// providers), texts are assumed of equal size when packed into requests, and the time a request
/// takes is ``assumedLatency`` (the provider's real latency grows with request size and load). The
/// duration is the largest of the three bounds — requests per minute, tokens per minute, and
/// `concurrency` requests in flight each taking the assumed latency — and ``limit`` names it.
public struct EmbeddingEstimate: Sendable, Equatable {
    /// What bounds the duration.
    public enum Limit: String, Sendable, Equatable {
        case requestsPerMinute = "requests_per_minute"
        case tokensPerMinute = "tokens_per_minute"
        case concurrency = "concurrency"
    }

    /// Rows of the workload.
    public var rows: Int
    /// Texts to embed (rows, or their chunks).
    public var texts: Int
    /// Estimated tokens of all texts.
    public var tokens: Int
    /// Texts per request, as the embedder would pack them.
    public var inputsPerRequest: Int
    /// Provider requests (without retries).
    public var requests: Int
    /// Time the requests need at the budgets and concurrency.
    public var duration: Duration
    /// What bounds ``duration``.
    public var limit: Limit
    /// US dollars at `pricePerMillionTokens`; `nil` when no price is configured.
    public var cost: Double?
    /// The time one request is assumed to take.
    public var assumedLatency: Duration

    /// - Parameters:
    ///   - rows: rows to embed.
    ///   - texts: texts they make (more than `rows` when content is chunked); default `rows`.
    ///   - tokens: estimated tokens of all texts.
    ///   - configuration: the provider's limits, budgets, concurrency and price.
    ///   - assumedLatency: time one request takes. Default 500 ms, typical of hosted providers for a
    ///     request of a few hundred short texts.
    public init(rows: Int, texts: Int? = nil, tokens: Int, configuration: OpenAIEmbedder.Configuration, assumedLatency: Duration = .milliseconds(500)) {
        let texts = max(0, texts ?? rows)
        let tokens = max(0, tokens)
        self.rows = rows
        self.texts = texts
        self.tokens = tokens
        self.assumedLatency = assumedLatency
        var requestTokens = max(1, configuration.maxRequestTokens)
        if let perMinute = configuration.tokensPerMinute {
            requestTokens = min(requestTokens, RequestBudget.Window(perMinute: perMinute, largest: configuration.maxInputTokens).limit)
        }
        let tokensPerText = texts > 0 ? max(1, Double(tokens) / Double(texts)) : 1
        let inputsPerRequest = max(1, min(max(1, configuration.maxInputs), Int(Double(requestTokens) / tokensPerText)))
        let requests = texts == 0 ? 0 : (texts + inputsPerRequest - 1) / inputsPerRequest
        self.inputsPerRequest = inputsPerRequest
        self.requests = requests
        let byConcurrency = Double(requests) * assumedLatency.seconds / Double(max(1, configuration.concurrency))
        let byRequests = configuration.requestsPerMinute.map { Double(requests) * 60 / Double($0) } ?? 0
        let byTokens = configuration.tokensPerMinute.map { Double(tokens) * 60 / Double($0) } ?? 0
        let longest = max(byConcurrency, byRequests, byTokens)
        duration = .seconds(longest)
        limit = longest == byRequests && byRequests > 0 ? .requestsPerMinute : longest == byTokens && byTokens > 0 ? .tokensPerMinute : .concurrency
        cost = configuration.pricePerMillionTokens.map { $0 * Double(tokens) / 1_000_000 }
    }

    /// The chunks a text of `tokens` tokens is split into when chunks hold at most `maxTokens` and
    /// each repeats `overlapTokens` of the one before: their number and their tokens together.
    public static func chunks(ofTokens tokens: Int, maxTokens: Int, overlapTokens: Int) -> (count: Int, tokens: Int) {
        guard maxTokens > 0, tokens > maxTokens else { return (1, max(0, tokens)) }
        let step = max(1, maxTokens - max(0, overlapTokens))
        let count = 1 + (tokens - maxTokens + step - 1) / step
        return (count, tokens + (count - 1) * min(max(0, overlapTokens), maxTokens - 1))
    }
}
