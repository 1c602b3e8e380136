import Postgres

/// A schema-qualified table name.
public struct TableName: Hashable, Sendable, Comparable, CustomStringConvertible, Codable {
    public var schema: String
    public var name: String

    public init(schema: String, name: String) {
        self.schema = schema
        self.name = name
    }

    /// Parses `schema.table` or `table` (schema `public`). Double quotes protect dots and case:
    /// `"My Schema"."Orders.2024"`.
    public init?(parsing text: String) {
        var parts: [String] = []
        var current = ""
        var quoted = false
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            if character == "\"" {
                let next = text.index(after: index)
                if quoted, next < text.endIndex, text[next] == "\"" {
                    current.append("\"")
                    index = next
                } else {
                    quoted.toggle()
                }
            } else if character == ".", !quoted {
                parts.append(current)
                current = ""
            } else {
                current.append(character)
            }
            index = text.index(after: index)
        }
        parts.append(current)
        guard !quoted, parts.allSatisfy({ !$0.isEmpty }) else { return nil }
        switch parts.count {
        case 1: self.init(schema: "public", name: parts[0])
        case 2: self.init(schema: parts[0], name: parts[1])
        default: return nil
        }
    }

    /// `"schema"."name"`, safe to splice into SQL.
    public var quoted: String {
        PostgresConnection.quoteIdentifier(schema) + "." + PostgresConnection.quoteIdentifier(name)
    }

    /// `schema.name`, for people.
    public var description: String { "\(schema).\(name)" }

    public static func < (lhs: TableName, rhs: TableName) -> Bool {
        (lhs.schema, lhs.name) < (rhs.schema, rhs.name)
    }
}
