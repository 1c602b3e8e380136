/// Fast JSON for the flat `{"column": "text" | null}` objects the index stores (metadata and source
/// values). Foundation's JSONSerialization costs more than everything else on the apply path.
public enum FlatJSON {
    /// `{"a":"x","b":null}` with keys sorted, so equal maps give equal text.
    public static func encode(_ values: [String: String?]) -> String {
        var output = "{"
        var first = true
        for key in values.keys.sorted() {
            if !first { output += "," }
            first = false
            output += DocumentID.jsonString(key)
            output += ":"
            if let value = values[key] ?? nil {
                output += DocumentID.jsonString(value)
            } else {
                output += "null"
            }
        }
        return output + "}"
    }

    /// Parses a flat object of strings, nulls (and, leniently, numbers and booleans as text).
    /// Returns an empty map for anything else.
    public static func decode(_ text: String) -> [String: String?] {
        var parser = Parser(bytes: Array(text.utf8))
        return parser.object() ?? [:]
    }

    private struct Parser {
        let bytes: [UInt8]
        var index = 0

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

        mutating func object() -> [String: String?]? {
            guard expect(UInt8(ascii: "{")) else { return nil }
            var result: [String: String?] = [:]
            if expect(UInt8(ascii: "}")) { return result }
            while true {
                skipSpace()
                guard let key = string(), expect(UInt8(ascii: ":")) else { return nil }
                skipSpace()
                guard index < bytes.count else { return nil }
                if bytes[index] == UInt8(ascii: "\"") {
                    guard let value = string() else { return nil }
                    result[key] = .some(value)
                } else {
                    let start = index
                    while index < bytes.count, !",} \n\r\t".utf8.contains(bytes[index]) { index += 1 }
                    let literal = String(decoding: bytes[start..<index], as: UTF8.self)
                    result[key] = literal == "null" ? .some(nil) : .some(literal)
                }
                if expect(UInt8(ascii: ",")) { continue }
                return expect(UInt8(ascii: "}")) ? result : nil
            }
        }

        mutating func string() -> String? {
            guard index < bytes.count, bytes[index] == UInt8(ascii: "\"") else { return nil }
            index += 1
            var output: [UInt8] = []
            while index < bytes.count {
                let byte = bytes[index]
                index += 1
                switch byte {
                case UInt8(ascii: "\""):
                    return String(decoding: output, as: UTF8.self)
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

        mutating func hex4() -> UInt32? {
            guard index + 4 <= bytes.count, let value = UInt32(String(decoding: bytes[index..<index + 4], as: UTF8.self), radix: 16) else { return nil }
            index += 4
            return value
        }

        mutating func unicodeEscape() -> Unicode.Scalar? {
            guard let high = hex4() else { return nil }
            if (0xD800..<0xDC00).contains(high), index + 6 <= bytes.count, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u") {
                index += 2
                guard let low = hex4() else { return nil }
                return Unicode.Scalar(0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00))
            }
            return Unicode.Scalar(high) ?? "\u{FFFD}"
        }
    }
}
