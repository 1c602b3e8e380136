import Foundation

/// A tokenizer read from a Hugging Face `tokenizer.json`: added tokens, normalizer, pre-tokenizer
/// and a BPE or WordPiece model, implemented in Swift.
///
/// Guarantees:
/// - ``encode(_:)`` returns the ids the reference implementation (`tokenizers`) returns for
///   `encode(text, add_special_tokens=False)`: no BOS/EOS or other template tokens are added, but
///   special tokens written in the text are recognised. The empty text has no tokens.
/// - Everything the file asks for is either implemented or refused at load with an
///   ``EmbeddingError/Code/configuration`` error naming the unsupported type: a tokenizer never
///   silently tokenizes differently.
/// - Immutable after loading, so one instance serves any number of tasks at once.
public struct Tokenizer: Sendable {
    /// The model that turns a word into ids.
    enum Model: Sendable {
        case bytePair(BytePairModel)
        case wordPiece(WordPieceModel)
    }

    let addedVocabulary: AddedVocabulary
    let normalizer: TextNormalizer
    let preTokenizer: PreTokenizer
    let model: Model

    /// One more than the largest id the tokenizer can return: the rows an embedding matrix needs.
    public let idLimit: Int

    /// A short description of the pipeline ("BPE, byte fallback, normalizer Prepend+Replace"), for logs.
    public let summary: String

    /// Reads and checks `tokenizer.json` at `path`.
    /// Throws ``EmbeddingError/Code/configuration`` when the file is missing, is not valid JSON, or
    /// uses a model, normalizer or pre-tokenizer type this implementation does not support.
    public init(contentsOfFile path: String) throws(EmbeddingError) {
        guard let data = FileManager.default.contents(atPath: path) else {
            let exists = FileManager.default.fileExists(atPath: path)
            throw EmbeddingError(.configuration, exists ? "cannot read the tokenizer \(path)" : "the tokenizer \(path) does not exist")
        }
        do {
            try self.init(json: [UInt8](data))
        } catch {
            throw EmbeddingError(.configuration, "tokenizer \(path): \(error.message)", underlying: error.underlying)
        }
    }

    /// Reads a `tokenizer.json` document from its UTF-8 bytes.
    public init(json: [UInt8]) throws(EmbeddingError) {
        let parts = try TokenizerDefinition(json: json)
        addedVocabulary = parts.addedVocabulary
        normalizer = parts.normalizer
        preTokenizer = parts.preTokenizer
        model = parts.model
        idLimit = parts.idLimit
        summary = parts.summary
    }

    /// The ids of `text`, without special tokens added.
    public func encode(_ text: String) -> [Int32] {
        var text = text
        return text.withUTF8 { encode(utf8: $0) }
    }

    /// The number of tokens of `text` (the length of ``encode(_:)``).
    public func count(_ text: String) -> Int { encode(text).count }

    /// The ids of the UTF-8 text `text` (valid UTF-8), without special tokens added.
    public func encode(utf8 text: UnsafeBufferPointer<UInt8>) -> [Int32] {
        var ids: [Int32] = []
        ids.reserveCapacity(text.count / 3 + 4)
        for segment in addedVocabulary.splitRaw(text) {
            switch segment {
            case .token(let id):
                ids.append(id)
            case .text(let range):
                let normalized = normalizer.normalize(UnsafeBufferPointer(rebasing: text[range]))
                normalized.withUnsafeBufferPointer { normalizedText in
                    for part in addedVocabulary.splitNormalized(normalizedText) {
                        switch part {
                        case .token(let id):
                            ids.append(id)
                        case .text(let partRange):
                            tokenizeWords(
                                UnsafeBufferPointer(rebasing: normalizedText[partRange]),
                                atStart: range.lowerBound == 0 && partRange.lowerBound == 0, into: &ids)
                        }
                    }
                }
            }
        }
        return ids
    }

    private func tokenizeWords(_ text: UnsafeBufferPointer<UInt8>, atStart: Bool, into ids: inout [Int32]) {
        guard !preTokenizer.steps.isEmpty else {
            tokenize(word: text, into: &ids)
            return
        }
        for word in preTokenizer.split(Array(text), atStart: atStart) {
            word.withUnsafeBufferPointer { tokenize(word: $0, into: &ids) }
        }
    }

    private func tokenize(word: UnsafeBufferPointer<UInt8>, into ids: inout [Int32]) {
        switch model {
        case .bytePair(let model): model.tokenize(word, into: &ids)
        case .wordPiece(let model): model.tokenize(word, into: &ids)
        }
    }

    /// The text of the token `id` (for diagnostics), or `nil`.
    public func token(_ id: Int) -> String? {
        switch model {
        case .bytePair(let model): model.vocabulary.token(id)
        case .wordPiece(let model): model.vocabulary.token(id)
        }
    }
}
