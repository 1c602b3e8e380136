import Indexing
/// Reads the source values a document keeps (a flat JSON object `{"column": "text" | null}`, as
/// ``Indexing/FlatJSON`` writes it or as a store returns it) straight into a ``RowHash``, without
/// building a dictionary or a string per value: the index side of a validation does this for every
/// document.
///
/// Keys may come in any order and with whitespace (a `jsonb` text, too); values without escapes are
/// hashed where they lie, escaped ones are decoded into a reused buffer. Numbers and booleans count
/// as their literal text, like ``Indexing/FlatJSON/decode(_:)``.
struct SourceValueScanner: Sendable {
    /// Where one column's value was found.
    private enum Slot {
        case missing
        case null
        /// Bytes `start..<end` of the JSON text.
        case inline(Int, Int)
        /// Bytes `start..<end` of the decoding buffer.
        case decoded(Int, Int)
    }

    let columns: [String]
    private let names: [[UInt8]]
    private var slots: [Slot]
    private var buffer: [UInt8] = []

    /// - Parameter columns: the entity's source columns, in the order the row hash takes them.
    init(columns: [String]) {
        self.columns = columns
        names = columns.map { Array($0.utf8) }
        slots = Array(repeating: .missing, count: columns.count)
    }

    /// Adds the values of `json` for ``columns`` to `hash`, in column order (a column the object
    /// lacks as ``RowHash/addMissing()``). Returns `false` when `json` is not a flat object of
    /// strings and nulls; `hash` is then unusable.
    mutating func hash(_ json: String, into hash: inout RowHash) -> Bool {
        for index in slots.indices { slots[index] = .missing }
        buffer.removeAll(keepingCapacity: true)
        var text = json
        return text.withUTF8 { bytes -> Bool in
            guard scan(bytes) else { return false }
            buffer.withUnsafeBytes { decoded in
                let raw = UnsafeRawBufferPointer(bytes)
                for slot in slots {
                    switch slot {
                    case .missing: hash.addMissing()
                    case .null: hash.addNull()
                    case .inline(let start, let end): hash.add(bytes: UnsafeRawBufferPointer(rebasing: raw[start..<end]))
                    case .decoded(let start, let end): hash.add(bytes: UnsafeRawBufferPointer(rebasing: decoded[start..<end]))
                    }
                }
            }
            return true
        }
    }

    /// The key texts of a document id (``Indexing/DocumentID/make(_:)``): the id itself for one key
    /// column, the strings of its JSON array for several. `nil` when it is not such an id (a NULL
    /// part, a wrong count).
    static func keyTexts(_ id: String, keyCount: Int) -> [String]? {
        if keyCount == 1 { return [id] }
        var text = id
        return text.withUTF8 { bytes -> [String]? in
            var parser = Parser(bytes: bytes)
            var scratch: [UInt8] = []
            guard parser.expect(UInt8(ascii: "[")) else { return nil }
            var parts: [String] = []
            while true {
                parser.skipSpace()
                guard let value = parser.string(into: &scratch) else { return nil }
                switch value {
                case .inline(let start, let end): parts.append(String(decoding: bytes[start..<end], as: UTF8.self))
                case .decoded: parts.append(String(decoding: scratch, as: UTF8.self))
                }
                if parser.expect(UInt8(ascii: ",")) { continue }
                guard parser.expect(UInt8(ascii: "]")) else { return nil }
                parser.skipSpace()
                return parser.atEnd && parts.count == keyCount ? parts : nil
            }
        }
    }

    private mutating func scan(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
        var parser = Parser(bytes: bytes)
        var key: [UInt8] = []
        guard parser.expect(UInt8(ascii: "{")) else { return false }
        if parser.expect(UInt8(ascii: "}")) { return true }
        while true {
            parser.skipSpace()
            guard let name = parser.string(into: &key), parser.expect(UInt8(ascii: ":")) else { return false }
            let column = columnIndex(name, bytes, key)
            parser.skipSpace()
            guard let first = parser.peek else { return false }
            if first == UInt8(ascii: "\"") {
                let start = buffer.count
                guard let value = parser.string(into: &buffer, appending: true) else { return false }
                if let column {
                    switch value {
                    case .inline(let from, let to): slots[column] = .inline(from, to)
                    case .decoded: slots[column] = .decoded(start, buffer.count)
                    }
                }
            } else {
                let (from, to) = parser.literal()
                guard to > from else { return false }
                if let column {
                    let isNull = to - from == 4 && bytes[from] == UInt8(ascii: "n") && bytes[from + 1] == UInt8(ascii: "u")
                        && bytes[from + 2] == UInt8(ascii: "l") && bytes[from + 3] == UInt8(ascii: "l")
                    slots[column] = isNull ? .null : .inline(from, to)
                }
            }
            if parser.expect(UInt8(ascii: ",")) { continue }
            return parser.expect(UInt8(ascii: "}"))
        }
    }

    private func columnIndex(_ name: Parser.Found, _ bytes: UnsafeBufferPointer<UInt8>, _ decoded: [UInt8]) -> Int? {
        switch name {
        case .inline(let start, let end):
            let length = end - start
            for (index, candidate) in names.enumerated() where candidate.count == length {
                var equal = true
                for offset in 0..<length where candidate[offset] != bytes[start + offset] {
                    equal = false
                    break
                }
                if equal { return index }
            }
            return nil
        case .decoded:
            return names.firstIndex(of: decoded)
        }
    }

    /// A cursor over JSON text.
    private struct Parser {
        enum Found {
            /// The string's bytes lie unescaped at `start..<end` of the text.
            case inline(Int, Int)
            /// The string had escapes; it was decoded into the buffer.
            case decoded
        }

        let bytes: UnsafeBufferPointer<UInt8>
        var index = 0

        init(bytes: UnsafeBufferPointer<UInt8>) { self.bytes = bytes }

        var atEnd: Bool { index >= bytes.count }
        var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

        mutating func skipSpace() {
            while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x0A || bytes[index] == 0x0D || bytes[index] == 0x09 {
                index += 1
            }
        }

        mutating func expect(_ byte: UInt8) -> Bool {
            skipSpace()
            guard index < bytes.count, bytes[index] == byte else { return false }
            index += 1
            return true
        }

        /// A literal (number, true, false, null): its byte range.
        mutating func literal() -> (Int, Int) {
            let start = index
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: ",") || byte == UInt8(ascii: "}") || byte == UInt8(ascii: "]") || byte == 0x20 || byte == 0x0A
                    || byte == 0x0D || byte == 0x09
                {
                    break
                }
                index += 1
            }
            return (start, index)
        }

        /// A string at the cursor. Escaped strings are decoded into `output` (replacing its contents
        /// unless `appending`).
        mutating func string(into output: inout [UInt8], appending: Bool = false) -> Found? {
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
            index += 1
            let start = index
            while index < bytes.count {
                let byte = bytes[index]
                if byte == UInt8(ascii: "\"") {
                    index += 1
                    return .inline(start, index - 1)
                }
                if byte == UInt8(ascii: "\\") { break }
                index += 1
            }
            guard index < bytes.count else { return nil }
            // Escapes: decode from the start.
            if !appending { output.removeAll(keepingCapacity: true) }
            output.append(contentsOf: bytes[start..<index])
            while index < bytes.count {
                let byte = bytes[index]
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    return .decoded
                case UInt8(ascii: "\\"):
                    guard index < bytes.count else { return nil }
                    let escaped = bytes[index]
                    index += 1
                    switch escaped {
                    case UInt8(ascii: "n"): output.append(0x0A)
                    case UInt8(ascii: "r"): output.append(0x0D)
                    case UInt8(ascii: "t"): output.append(0x09)
                    case UInt8(ascii: "b"): output.append(0x08)
                    case UInt8(ascii: "f"): output.append(0x0C)
                    case UInt8(ascii: "u"):
                        guard let scalar = unicodeEscape() else { return nil }
                        output.append(contentsOf: Array(String(Character(scalar)).utf8))
                    default: output.append(escaped)
                    }
                default:
                    output.append(byte)
                }
            }
            return nil
        }

        private mutating func hex4() -> UInt32? {
            guard index + 4 <= bytes.count else { return nil }
            var value: UInt32 = 0
            for offset in 0..<4 {
                let byte = bytes[index + offset]
                let digit: UInt32
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = UInt32(byte - UInt8(ascii: "0"))
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(byte - UInt8(ascii: "a") + 10)
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(byte - UInt8(ascii: "A") + 10)
                default: return nil
                }
                value = value << 4 | digit
            }
            index += 4
            return value
        }

        /// `\uXXXX` (after the `u`), joining a surrogate pair; a lone surrogate becomes U+FFFD, as
        /// ``Indexing/FlatJSON`` reads it.
        private mutating func unicodeEscape() -> Unicode.Scalar? {
            guard let high = hex4() else { return nil }
            if (0xD800..<0xDC00).contains(high), index + 6 <= bytes.count, bytes[index] == UInt8(ascii: "\\"),
                bytes[index + 1] == UInt8(ascii: "u")
            {
                index += 2
                guard let low = hex4() else { return nil }
                return Unicode.Scalar(0x10000 + ((high - 0xD800) << 10) + (low &- 0xDC00)) ?? "\u{FFFD}"
            }
            return Unicode.Scalar(high) ?? "\u{FFFD}"
        }
    }
}
