/// The pre-tokenizer of a tokenizer: splits a normalized text into words that the model tokenizes
/// one by one (`tokenizer.json`'s `pre_tokenizer`; `null` keeps the whole text as one word).
///
/// Supported steps (types of Hugging Face `tokenizers`): `Sequence`, `BertPreTokenizer`,
/// `Whitespace`, `WhitespaceSplit` and `Metaspace`.
struct PreTokenizer: Sendable {
    /// One pre-tokenization step.
    enum Step: Sendable, Equatable {
        /// Splits on whitespace (removed) and isolates each punctuation character.
        case bert
        /// Words are runs of word characters or runs of other non-space characters
        /// (`\w+|[^\w\s]+`); whitespace is removed.
        case whitespace
        /// Splits on whitespace, which is removed.
        case whitespaceSplit
        /// Replaces spaces by `replacement`, prepends it (per `prepend`), and, when `split`, starts
        /// a new word at each `replacement`.
        case metaspace(replacement: [UInt8], prepend: MetaspacePrepend, split: Bool)
    }

    /// When ``Step/metaspace(replacement:prepend:split:)`` prepends its replacement.
    enum MetaspacePrepend: Sendable, Equatable {
        /// To every word that does not start with it.
        case always
        /// Only to the start of the text.
        case first
        case never
    }

    /// The steps, in order (a `Sequence` is flattened); empty: the text is one word.
    let steps: [Step]

    /// Keeps the whole text as one word.
    static let none = PreTokenizer(steps: [])

    /// The words of `text`, in order. `atStart` tells whether `text` begins the original input (not
    /// after an added token), which `Metaspace` with `prepend_scheme: first` needs.
    func split(_ text: [UInt8], atStart: Bool) -> [[UInt8]] {
        // As in the reference, empty pieces are dropped before each step (an empty text has no words).
        var words = text.isEmpty ? [] : [text]
        for step in steps {
            var next: [[UInt8]] = []
            for (index, word) in words.enumerated() where !word.isEmpty {
                Self.apply(step, to: word, atStart: atStart && index == 0, into: &next)
            }
            words = next
        }
        return words.filter { !$0.isEmpty }
    }

    private static func apply(_ step: Step, to word: [UInt8], atStart: Bool, into words: inout [[UInt8]]) {
        switch step {
        case .bert:
            splitScalars(word, into: &words) { scalar in
                if scalar.properties.isWhitespace { return .remove }
                return isBertPunctuation(scalar) ? .isolate : .keep
            }
        case .whitespaceSplit:
            splitScalars(word, into: &words) { $0.properties.isWhitespace ? .remove : .keep }
        case .whitespace:
            splitWhitespaceRegex(word, into: &words)
        case .metaspace(let replacement, let prepend, let split):
            var text = replace(word, space: replacement)
            let startsWithReplacement = text.starts(with: replacement)
            switch prepend {
            case .always where !startsWithReplacement, .first where !startsWithReplacement && atStart:
                text = replacement + text
            default:
                break
            }
            guard split, !replacement.isEmpty else {
                words.append(text)
                return
            }
            // Each replacement starts a new word and stays with it (MergedWithNext).
            var start = 0
            var index = 0
            while index < text.count {
                if index > start, text[index...].starts(with: replacement) {
                    words.append(Array(text[start..<index]))
                    start = index
                    index += replacement.count
                } else {
                    index += 1
                }
            }
            if start < text.count { words.append(Array(text[start...])) }
        }
    }

    private enum Disposition { case keep, remove, isolate }

    /// Splits at scalars that `classify` removes or isolates.
    private static func splitScalars(_ word: [UInt8], into words: inout [[UInt8]], _ classify: (Unicode.Scalar) -> Disposition) {
        word.withUnsafeBufferPointer { input in
            var start = 0
            var index = 0
            while index < input.count {
                let (scalar, length) = UTF8Scalar.decode(input, at: index)
                let disposition = classify(scalar)
                if disposition != .keep {
                    if start < index { words.append(Array(input[start..<index])) }
                    if disposition == .isolate { words.append(Array(input[index..<index + length])) }
                    start = index + length
                }
                index += length
            }
            if start < input.count { words.append(Array(input[start...])) }
        }
    }

    /// `\w+|[^\w\s]+`, as the `Whitespace` pre-tokenizer's regular expression matches.
    private static func splitWhitespaceRegex(_ word: [UInt8], into words: inout [[UInt8]]) {
        enum Run { case none, word, other }
        word.withUnsafeBufferPointer { input in
            var start = 0
            var run = Run.none
            var index = 0
            while index < input.count {
                let (scalar, length) = UTF8Scalar.decode(input, at: index)
                let kind: Run = isWordCharacter(scalar) ? .word : (scalar.properties.isWhitespace ? .none : .other)
                if kind != run {
                    if run != .none { words.append(Array(input[start..<index])) }
                    start = index
                    run = kind
                }
                index += length
            }
            if run != .none { words.append(Array(input[start...])) }
        }
    }

    private static func replace(_ word: [UInt8], space replacement: [UInt8]) -> [UInt8] {
        guard word.contains(0x20) else { return word }
        var output: [UInt8] = []
        output.reserveCapacity(word.count + word.count / 2)
        for byte in word {
            if byte == 0x20 { output.append(contentsOf: replacement) } else { output.append(byte) }
        }
        return output
    }

    /// `\w` of Unicode regular expressions: alphabetic, marks, decimal digits, connector
    /// punctuation and join controls.
    static func isWordCharacter(_ scalar: Unicode.Scalar) -> Bool {
        let properties = scalar.properties
        if properties.isAlphabetic || properties.isJoinControl { return true }
        switch properties.generalCategory {
        case .nonspacingMark, .spacingMark, .enclosingMark, .decimalNumber, .connectorPunctuation: return true
        default: return false
        }
    }

    /// BERT's punctuation: ASCII punctuation and Unicode general category P*.
    static func isBertPunctuation(_ scalar: Unicode.Scalar) -> Bool {
        let value = scalar.value
        if (33...47).contains(value) || (58...64).contains(value) || (91...96).contains(value) || (123...126).contains(value) {
            return true
        }
        switch scalar.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
            .finalPunctuation, .otherPunctuation:
            return true
        default:
            return false
        }
    }
}
