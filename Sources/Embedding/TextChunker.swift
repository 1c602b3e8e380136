/// Splits long text into overlapping chunks that each fit an embedder's token budget.
///
/// Guarantees:
/// - Text of at most ``Configuration/maxTokens`` tokens (by the given counter) is one chunk, the
///   text itself.
/// - Otherwise every chunk holds at most `maxTokens` tokens as the counter sees its words, chunks
///   follow the text's order and together cover all of it, and each chunk after the first starts
///   with about ``Configuration/overlapTokens`` tokens that end the one before.
/// - Chunks end after a paragraph or sentence where one falls in the last quarter of a chunk, else
///   after a word; a single word longer than the budget is cut by characters.
/// - The same text, configuration and counter always give the same chunks, so an unchanged
///   paragraph of an edited document keeps its chunk (and its stored vector) whenever the chunk
///   borders before it did not move.
public struct TextChunker: Sendable {
    public struct Configuration: Sendable, Equatable {
        /// Most tokens per chunk. Default 512.
        public var maxTokens = 512
        /// Tokens repeated from the end of the previous chunk. Default 64; kept below half of
        /// `maxTokens`.
        public var overlapTokens = 64

        public init(maxTokens: Int = 512, overlapTokens: Int = 64) {
            self.maxTokens = maxTokens
            self.overlapTokens = overlapTokens
        }
    }

    public let configuration: Configuration

    public init(configuration: Configuration) {
        var configuration = configuration
        configuration.maxTokens = max(1, configuration.maxTokens)
        configuration.overlapTokens = max(0, min(configuration.overlapTokens, (configuration.maxTokens - 1) / 2))
        self.configuration = configuration
    }

    /// A word with the spacing that follows it, as a range of the text, with its token count.
    private struct Piece {
        var range: Range<String.Index>
        var tokens: Int
        /// How good a place to end a chunk after this piece is: 2 paragraph, 1 sentence, 0 word.
        var strength: Int
    }

    /// The chunks of `text`; `tokens` counts the tokens of a piece of text (the embedder's count).
    public func chunks(of text: String, tokens: (Substring) -> Int) -> [Substring] {
        let budget = configuration.maxTokens
        // Each token is at least one byte (byte-level and byte-fallback tokenizers; the estimate
        // too), plus one for a prefix the tokenizer may add: short text needs no count.
        if text.utf8.count + 1 <= budget || tokens(text[...]) <= budget { return [text[...]] }
        let pieces = split(text, tokens: tokens)
        var chunks: [Substring] = []
        var start = 0
        while start < pieces.count {
            // Grow the chunk while it fits.
            var end = start
            var used = 0
            while end < pieces.count, used + pieces[end].tokens <= budget {
                used += pieces[end].tokens
                end += 1
            }
            if end == start { end = start + 1 }  // a piece larger than the budget stands alone (it was cut to fit)
            // Prefer ending after a paragraph, then a sentence, within the chunk's last quarter.
            if end < pieces.count {
                var best = end
                var bestStrength = 0
                var tail = 0
                var index = end - 1
                while index > start, tail <= budget / 4 {
                    if pieces[index].strength > bestStrength {
                        best = index + 1
                        bestStrength = pieces[index].strength
                        if bestStrength == 2 { break }
                    }
                    tail += pieces[index].tokens
                    index -= 1
                }
                if bestStrength > 0 { end = best }
            }
            chunks.append(text[pieces[start].range.lowerBound..<pieces[end - 1].range.upperBound])
            guard end < pieces.count else { break }
            // The next chunk repeats the last words of this one, at most `overlap` tokens of them,
            // and always moves forward.
            var next = end
            var overlap = 0
            while next - 1 > start, overlap + pieces[next - 1].tokens <= configuration.overlapTokens {
                overlap += pieces[next - 1].tokens
                next -= 1
            }
            start = next
        }
        return chunks
    }

    /// Words with their following spacing; a word over the budget is cut into pieces that fit.
    private func split(_ text: String, tokens: (Substring) -> Int) -> [Piece] {
        var pieces: [Piece] = []
        var wordStart = text.startIndex
        var index = text.startIndex
        var sawSpace = false
        var newlines = 0
        func close(at end: String.Index) {
            guard wordStart < end else { return }
            let word = text[wordStart..<end]
            let strength = newlines >= 2 ? 2 : (Self.endsSentence(word) || newlines == 1 ? 1 : 0)
            let count = tokens(word)
            if count <= configuration.maxTokens {
                pieces.append(Piece(range: wordStart..<end, tokens: count, strength: strength))
            } else {
                pieces.append(contentsOf: cut(word, tokens: tokens, strength: strength))
            }
            wordStart = end
            newlines = 0
        }
        while index < text.endIndex {
            let character = text[index]
            if character.isWhitespace {
                sawSpace = true
                if character.isNewline { newlines += 1 }
            } else if sawSpace {
                close(at: index)
                sawSpace = false
            }
            index = text.index(after: index)
        }
        close(at: text.endIndex)
        return pieces
    }

    /// Cuts a word longer than the budget into consecutive pieces that each fit.
    private func cut(_ word: Substring, tokens: (Substring) -> Int, strength: Int) -> [Piece] {
        var pieces: [Piece] = []
        var start = word.startIndex
        while start < word.endIndex {
            // Binary search for the longest prefix that fits.
            var low = 1
            var high = word.distance(from: start, to: word.endIndex)
            while low < high {
                let middle = (low + high + 1) / 2
                if tokens(word[start..<word.index(start, offsetBy: middle)]) <= configuration.maxTokens {
                    low = middle
                } else {
                    high = middle - 1
                }
            }
            let end = word.index(start, offsetBy: low)
            pieces.append(Piece(range: start..<end, tokens: tokens(word[start..<end]), strength: end == word.endIndex ? strength : 0))
            start = end
        }
        return pieces
    }

    private static func endsSentence(_ word: Substring) -> Bool {
        guard let last = word.last(where: { !$0.isWhitespace }) else { return false }
        return last == "." || last == "!" || last == "?" || last == "。" || last == "！" || last == "？"
    }
}
