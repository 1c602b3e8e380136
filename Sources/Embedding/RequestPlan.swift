/// How one call's texts are cut into provider requests: in order, each request at most
/// `maxInputs` texts and `maxRequestTokens` estimated tokens; a text over `maxInputTokens` is
/// set aside unsent (the provider would refuse it).
struct RequestPlan: Sendable {
    /// The texts of one request, with their places in the call.
    struct Batch: Sendable {
        var positions: [Int]
        var texts: [String]
        var tokens: [Int]
        var totalTokens: Int { tokens.reduce(0, +) }
        var count: Int { texts.count }

        /// The two halves (for isolating a rejected input); the first is the larger by at most one.
        func halves() -> (Batch, Batch) {
            let middle = (count + 1) / 2
            return (
                Batch(positions: Array(positions[..<middle]), texts: Array(texts[..<middle]), tokens: Array(tokens[..<middle])),
                Batch(positions: Array(positions[middle...]), texts: Array(texts[middle...]), tokens: Array(tokens[middle...]))
            )
        }
    }

    private(set) var batches: [Batch] = []
    /// Texts over `maxInputTokens`: position and estimated tokens.
    private(set) var oversized: [(position: Int, tokens: Int)] = []

    init(_ texts: [String], tokenCount: (String) -> Int, maxInputs: Int, maxRequestTokens: Int, maxInputTokens: Int) {
        let maxInputs = max(1, maxInputs)
        var current = Batch(positions: [], texts: [], tokens: [])
        var currentTokens = 0
        for (position, text) in texts.enumerated() {
            let tokens = tokenCount(text)
            if tokens > maxInputTokens {
                oversized.append((position, tokens))
                continue
            }
            if current.count > 0, current.count >= maxInputs || currentTokens + tokens > maxRequestTokens {
                batches.append(current)
                current = Batch(positions: [], texts: [], tokens: [])
                currentTokens = 0
            }
            current.positions.append(position)
            current.texts.append(text)
            current.tokens.append(tokens)
            currentTokens += tokens
        }
        if current.count > 0 { batches.append(current) }
    }
}
