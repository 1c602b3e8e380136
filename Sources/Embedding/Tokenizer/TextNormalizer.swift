import Foundation

/// The normalizer of a tokenizer: the steps of `tokenizer.json`'s `normalizer`, applied in order to
/// a text's UTF-8 bytes before it is split into words.
///
/// Supported steps (types of Hugging Face `tokenizers`): `Sequence`, `Prepend`, `Replace` (string
/// patterns), `Lowercase`, `Strip`, `StripAccents`, `NFC`, `NFD`, `NFKC`, `NFKD` and
/// `BertNormalizer`. Each step is a pass over bytes; ASCII takes no Unicode tables, and the Unicode
/// normal forms cost nothing on ASCII text (it is already in every normal form).
struct TextNormalizer: Sendable {
    /// One normalization step.
    enum Step: Sendable, Equatable {
        /// Prepends the bytes to a non-empty text.
        case prepend([UInt8])
        /// Replaces every occurrence of `pattern` (non-empty) by `content`.
        case replace(pattern: [UInt8], content: [UInt8])
        /// Unicode lowercase mapping, scalar by scalar.
        case lowercase
        /// Removes leading and/or trailing whitespace.
        case strip(left: Bool, right: Bool)
        /// Removes combining marks (general category M: accents once decomposed), as `StripAccents`
        /// does.
        case stripAccents
        /// A Unicode normal form.
        case unicode(NormalForm)
        /// BERT's normalizer: control characters removed, whitespace made spaces, CJK ideographs
        /// padded with spaces, accents stripped (NFD, then marks removed) and lowercased.
        case bert(cleanText: Bool, handleChineseCharacters: Bool, stripAccents: Bool, lowercase: Bool)
    }

    /// A Unicode normalization form.
    enum NormalForm: Sendable, Equatable {
        case nfc, nfd, nfkc, nfkd
    }

    /// The steps, in order (a `Sequence` is flattened).
    let steps: [Step]

    /// A normalizer that changes nothing.
    static let identity = TextNormalizer(steps: [])

    /// The normalized bytes of `text`.
    func normalize(_ text: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        var bytes = Array(text)
        for step in steps { bytes = Self.apply(step, to: bytes) }
        return bytes
    }

    /// The normalized bytes of `text`.
    func normalize(_ text: [UInt8]) -> [UInt8] {
        text.withUnsafeBufferPointer { normalize($0) }
    }

    private static func apply(_ step: Step, to bytes: [UInt8]) -> [UInt8] {
        switch step {
        case .prepend(let prefix):
            guard !bytes.isEmpty else { return bytes }
            return prefix + bytes
        case .replace(let pattern, let content):
            return replace(bytes, pattern, content)
        case .lowercase:
            return mapScalars(bytes) { scalar, output in appendLowercase(scalar, to: &output) }
        case .strip(let left, let right):
            return strip(bytes, left: left, right: right)
        case .stripAccents:
            return mapScalars(bytes) { scalar, output in
                switch scalar.properties.generalCategory {
                case .nonspacingMark, .spacingMark, .enclosingMark: return
                default: output.appendUTF8(scalar)
                }
            }
        case .unicode(let form):
            return normalized(bytes, form)
        case .bert(let cleanText, let handleChineseCharacters, let stripAccents, let lowercase):
            var bytes = bytes
            if cleanText {
                bytes = mapScalars(bytes) { scalar, output in
                    let value = scalar.value
                    if value == 0 || value == 0xFFFD || isControl(scalar) { return }
                    output.appendUTF8(isBertWhitespace(scalar) ? " " : scalar)
                }
            }
            if handleChineseCharacters {
                bytes = mapScalars(bytes) { scalar, output in
                    if isChineseCharacter(scalar) {
                        output.append(0x20)
                        output.appendUTF8(scalar)
                        output.append(0x20)
                    } else {
                        output.appendUTF8(scalar)
                    }
                }
            }
            if stripAccents {
                // BERT removes only non-spacing marks (Mn), unlike `StripAccents`.
                bytes = mapScalars(normalized(bytes, .nfd)) { scalar, output in
                    if scalar.properties.generalCategory != .nonspacingMark { output.appendUTF8(scalar) }
                }
            }
            if lowercase { bytes = apply(.lowercase, to: bytes) }
            return bytes
        }
    }

    /// The bytes that `transform` appends for each scalar of `bytes`, in order.
    private static func mapScalars(_ bytes: [UInt8], _ transform: (Unicode.Scalar, inout [UInt8]) -> Void) -> [UInt8] {
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count + bytes.count / 8)
        bytes.withUnsafeBufferPointer { input in
            var index = 0
            while index < input.count {
                let (scalar, length) = UTF8Scalar.decode(input, at: index)
                transform(scalar, &output)
                index += length
            }
        }
        return output
    }

    private static func appendLowercase(_ scalar: Unicode.Scalar, to output: inout [UInt8]) {
        let value = scalar.value
        if value < 0x80 {
            output.append(value >= 0x41 && value <= 0x5A ? UInt8(value + 32) : UInt8(value))
            return
        }
        guard scalar.properties.changesWhenLowercased else {
            output.appendUTF8(scalar)
            return
        }
        for lower in scalar.properties.lowercaseMapping.unicodeScalars { output.appendUTF8(lower) }
    }

    private static func replace(_ bytes: [UInt8], _ pattern: [UInt8], _ content: [UInt8]) -> [UInt8] {
        guard let first = pattern.first, bytes.count >= pattern.count else { return bytes }
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count + (content.count > pattern.count ? bytes.count / 2 : 0))
        var index = 0
        let count = bytes.count
        let patternCount = pattern.count
        while index < count {
            let byte = bytes[index]
            if byte == first, index + patternCount <= count {
                var matches = true
                var offset = 1
                while offset < patternCount {
                    if bytes[index + offset] != pattern[offset] {
                        matches = false
                        break
                    }
                    offset += 1
                }
                if matches {
                    output.append(contentsOf: content)
                    index += patternCount
                    continue
                }
            }
            output.append(byte)
            index += 1
        }
        return output
    }

    private static func strip(_ bytes: [UInt8], left: Bool, right: Bool) -> [UInt8] {
        bytes.withUnsafeBufferPointer { input -> [UInt8] in
            var scalars: [(start: Int, length: Int, isSpace: Bool)] = []
            var index = 0
            while index < input.count {
                let (scalar, length) = UTF8Scalar.decode(input, at: index)
                scalars.append((index, length, scalar.properties.isWhitespace))
                index += length
            }
            var lower = 0
            var upper = scalars.count
            if left { while lower < upper, scalars[lower].isSpace { lower += 1 } }
            if right { while upper > lower, scalars[upper - 1].isSpace { upper -= 1 } }
            guard lower < upper else { return [] }
            return Array(input[scalars[lower].start..<(scalars[upper - 1].start + scalars[upper - 1].length)])
        }
    }

    private static func normalized(_ bytes: [UInt8], _ form: NormalForm) -> [UInt8] {
        // ASCII is invariant under every normal form.
        guard bytes.contains(where: { $0 >= 0x80 }) else { return bytes }
        let text = String(decoding: bytes, as: UTF8.self)
        let result: String
        switch form {
        case .nfc: result = text.precomposedStringWithCanonicalMapping
        case .nfd: result = text.decomposedStringWithCanonicalMapping
        case .nfkc: result = text.precomposedStringWithCompatibilityMapping
        case .nfkd: result = text.decomposedStringWithCompatibilityMapping
        }
        return Array(result.utf8)
    }

    /// BERT's whitespace: tab, newline, carriage return and Unicode White_Space.
    static func isBertWhitespace(_ scalar: Unicode.Scalar) -> Bool {
        scalar == "\t" || scalar == "\n" || scalar == "\r" || scalar.properties.isWhitespace
    }

    /// BERT's control characters: general category C*, except tab, newline and carriage return.
    static func isControl(_ scalar: Unicode.Scalar) -> Bool {
        if scalar == "\t" || scalar == "\n" || scalar == "\r" { return false }
        switch scalar.properties.generalCategory {
        case .control, .format, .unassigned, .privateUse, .surrogate: return true
        default: return false
        }
    }

    /// The CJK ideograph blocks BERT pads with spaces.
    static func isChineseCharacter(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x4E00...0x9FFF, 0x3400...0x4DBF, 0x20000...0x2A6DF, 0x2A700...0x2B73F, 0x2B740...0x2B81F,
            0x2B920...0x2CEAF, 0xF900...0xFAFF, 0x2F800...0x2FA1F:
            return true
        default:
            return false
        }
    }
}
