/// The text form of a one-dimensional PostgreSQL array, for binding a list as one parameter
/// (`id = ANY($1::text[])`): every element double-quoted, with quotes and backslashes escaped, so
/// any text — commas, braces, spaces, the word NULL — arrives as itself.
public enum PostgresArrayLiteral {
    /// `{"a","b"}`; `nil` elements are SQL `NULL`.
    public static func make(_ elements: some Sequence<String?>) -> String {
        var text = "{"
        var first = true
        for element in elements {
            if !first { text += "," }
            first = false
            guard let element else {
                text += "NULL"
                continue
            }
            text += "\""
            for character in element.unicodeScalars {
                if character == "\"" || character == "\\" { text += "\\" }
                text.unicodeScalars.append(character)
            }
            text += "\""
        }
        return text + "}"
    }

    /// `{"a","b"}` of non-optional elements.
    public static func make(_ elements: some Sequence<String>) -> String {
        make(elements.lazy.map { Optional($0) })
    }

    /// Parses the text form of a `text[]` whose elements need no quoting (`{a,b}`, e.g. hex hashes),
    /// or are quoted as PostgreSQL prints them; `nil` for something else.
    public static func parse(_ text: String) -> [String]? {
        guard text.hasPrefix("{"), text.hasSuffix("}") else { return nil }
        let body = text.dropFirst().dropLast()
        if body.isEmpty { return [] }
        var elements: [String] = []
        var current = ""
        var quoted = false
        var escaped = false
        for character in body {
            if escaped {
                current.append(character)
                escaped = false
            } else if character == "\\" && quoted {
                escaped = true
            } else if character == "\"" {
                quoted.toggle()
            } else if character == "," && !quoted {
                elements.append(current)
                current = ""
            } else {
                current.append(character)
            }
        }
        elements.append(current)
        return elements
    }
}
