/// The added tokens of a tokenizer (`tokenizer.json`'s `added_tokens`: `<s>`, `[CLS]`, …), which
/// are cut out of a text before the model sees it.
///
/// As in the reference implementation: tokens with `normalized: false` are matched in the raw text,
/// the others in the normalized pieces between them; matching is leftmost-longest; `single_word`,
/// `lstrip` and `rstrip` are honoured. Special tokens written in a text are recognised (the
/// reference does so too when it encodes without adding special tokens).
struct AddedVocabulary: Sendable {
    /// One added token.
    struct Token: Sendable, Equatable {
        var content: [UInt8]
        var id: Int32
        var singleWord = false
        var leftStrip = false
        var rightStrip = false
    }

    /// A piece of a text: an added token, or text between added tokens.
    enum Segment: Equatable {
        case token(Int32)
        case text(Range<Int>)
    }

    /// Tokens matched in the raw text.
    let raw: [Token]
    /// Tokens matched in normalized text (their content normalized already).
    let normalized: [Token]
    private let rawFirstBytes: [Bool]
    private let normalizedFirstBytes: [Bool]

    init(raw: [Token], normalized: [Token]) {
        self.raw = raw.filter { !$0.content.isEmpty }
        self.normalized = normalized.filter { !$0.content.isEmpty }
        rawFirstBytes = Self.firstBytes(self.raw)
        normalizedFirstBytes = Self.firstBytes(self.normalized)
    }

    /// No added tokens.
    static let none = AddedVocabulary(raw: [], normalized: [])

    private static func firstBytes(_ tokens: [Token]) -> [Bool] {
        var table = [Bool](repeating: false, count: 256)
        for token in tokens { table[Int(token.content[0])] = true }
        return table
    }

    /// Segments of `text` around the tokens matched in raw text.
    func splitRaw(_ text: UnsafeBufferPointer<UInt8>) -> [Segment] {
        Self.split(text, raw, rawFirstBytes)
    }

    /// Segments of normalized `text` around the normalized tokens.
    func splitNormalized(_ text: UnsafeBufferPointer<UInt8>) -> [Segment] {
        Self.split(text, normalized, normalizedFirstBytes)
    }

    private static func split(_ text: UnsafeBufferPointer<UInt8>, _ tokens: [Token], _ firstBytes: [Bool]) -> [Segment] {
        guard !tokens.isEmpty else { return [.text(0..<text.count)] }
        var segments: [Segment] = []
        var textStart = 0
        var index = 0
        while index < text.count {
            guard firstBytes[Int(text[index])], let token = longestMatch(text, at: index, tokens) else {
                index += 1
                continue
            }
            var start = index
            var end = index + token.content.count
            if token.singleWord {
                let before = start == 0 || !isWordScalar(endingAt: start, text)
                let after = end == text.count || !isWordScalar(startingAt: end, text)
                guard before, after else {
                    index += 1
                    continue
                }
            }
            if token.leftStrip {
                while start > textStart, let length = whitespaceLength(endingAt: start, text) { start -= length }
            }
            if token.rightStrip {
                while end < text.count, let length = whitespaceLength(startingAt: end, text) { end += length }
            }
            if textStart < start { segments.append(.text(textStart..<start)) }
            segments.append(.token(token.id))
            textStart = end
            index = end
        }
        if textStart < text.count || segments.isEmpty { segments.append(.text(textStart..<text.count)) }
        return segments
    }

    private static func longestMatch(_ text: UnsafeBufferPointer<UInt8>, at index: Int, _ tokens: [Token]) -> Token? {
        var best: Token?
        for token in tokens where token.content.count <= text.count - index && token.content.count > (best?.content.count ?? 0) {
            var matches = true
            for offset in 0..<token.content.count where text[index + offset] != token.content[offset] {
                matches = false
                break
            }
            if matches { best = token }
        }
        return best
    }

    /// Start of the scalar that ends at `end`.
    private static func scalarStart(endingAt end: Int, _ text: UnsafeBufferPointer<UInt8>) -> Int {
        var start = end - 1
        while start > 0, text[start] & 0xC0 == 0x80 { start -= 1 }
        return start
    }

    private static func isWordScalar(endingAt end: Int, _ text: UnsafeBufferPointer<UInt8>) -> Bool {
        let start = scalarStart(endingAt: end, text)
        return isWord(UTF8Scalar.decode(text, at: start).scalar)
    }

    private static func isWordScalar(startingAt start: Int, _ text: UnsafeBufferPointer<UInt8>) -> Bool {
        isWord(UTF8Scalar.decode(text, at: start).scalar)
    }

    private static func isWord(_ scalar: Unicode.Scalar) -> Bool {
        scalar == "_" || scalar.properties.isAlphabetic || scalar.properties.numericType != nil
    }

    private static func whitespaceLength(endingAt end: Int, _ text: UnsafeBufferPointer<UInt8>) -> Int? {
        let start = scalarStart(endingAt: end, text)
        return UTF8Scalar.decode(text, at: start).scalar.properties.isWhitespace ? end - start : nil
    }

    private static func whitespaceLength(startingAt start: Int, _ text: UnsafeBufferPointer<UInt8>) -> Int? {
        let (scalar, length) = UTF8Scalar.decode(text, at: start)
        return scalar.properties.isWhitespace ? length : nil
    }
}
