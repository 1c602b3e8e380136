import Foundation

/// The text form of a row key used as document id.
public enum DocumentID {
    /// One key column: its text. Several: a JSON array of their texts (`["7","2024-01-01"]`).
    public static func make(_ key: [String?]) -> String {
        if key.count == 1, let value = key[0] { return value }
        let parts = key.map { value -> String in
            guard let value else { return "null" }
            return jsonString(value)
        }
        return "[" + parts.joined(separator: ",") + "]"
    }

    /// Parses an id back into key texts, for the given number of key columns.
    public static func parse(_ id: String, keyCount: Int) -> [String?]? {
        if keyCount == 1 { return [id] }
        guard let data = id.data(using: .utf8), let array = try? JSONSerialization.jsonObject(with: data) as? [Any],
            array.count == keyCount
        else { return nil }
        return array.map { $0 as? String }
    }

    static func jsonString(_ value: String) -> String {
        // Fast path: nothing to escape (the usual case).
        if !value.utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            return "\"" + value + "\""
        }
        var output = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": output += "\\\""
            case "\\": output += "\\\\"
            case "\n": output += "\\n"
            case "\r": output += "\\r"
            case "\t": output += "\\t"
            default:
                if scalar.value < 0x20 {
                    output += String(format: "\\u%04x", scalar.value)
                } else {
                    output.unicodeScalars.append(scalar)
                }
            }
        }
        return output + "\""
    }
}
