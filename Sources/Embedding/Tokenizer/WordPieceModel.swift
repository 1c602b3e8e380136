/// A WordPiece model (Hugging Face `tokenizers` type `WordPiece`, as in BERT and model2vec-style
/// models): each word is cut greedily into the longest vocabulary entries from the left, pieces
/// after the first carrying the continuation prefix (`##`).
///
/// Guarantees the reference's ids: a word longer than `maxInputCharsPerWord` scalars, or one that
/// cannot be cut into vocabulary entries, becomes the single unknown token. Words are pre-tokenized
/// (short), so the greedy search's quadratic worst case is bounded by the word limit.
struct WordPieceModel: Sendable {
    let vocabulary: Vocabulary
    let unknownID: Int32
    let continuingSubwordPrefix: [UInt8]
    let maxInputCharsPerWord: Int

    /// Appends the ids of `word` to `ids`.
    func tokenize(_ word: UnsafeBufferPointer<UInt8>, into ids: inout [Int32]) {
        guard !word.isEmpty else { return }
        // Scalar boundaries of the word: the ends a piece may stop at.
        var boundaries: [Int] = [0]
        var index = 0
        while index < word.count {
            index = min(index + UTF8Scalar.length(lead: word[index]), word.count)
            boundaries.append(index)
        }
        guard boundaries.count - 1 <= maxInputCharsPerWord else {
            ids.append(unknownID)
            return
        }
        let first = ids.count
        var startBoundary = 0
        while startBoundary < boundaries.count - 1 {
            let start = boundaries[startBoundary]
            var endBoundary = boundaries.count - 1
            var found: Int32?
            while endBoundary > startBoundary {
                let piece = UnsafeBufferPointer(rebasing: word[start..<boundaries[endBoundary]])
                found = start > 0 ? vocabulary.id(prefix: continuingSubwordPrefix, piece) : vocabulary.id(piece)
                if found != nil { break }
                endBoundary -= 1
            }
            guard let found else {
                ids.removeLast(ids.count - first)
                ids.append(unknownID)
                return
            }
            ids.append(found)
            startBoundary = endBoundary
        }
    }
}
