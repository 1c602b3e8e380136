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

    /// `schema.name` with double quotes only where SQL needs them: for fixes people copy into psql.
    public var readableSQL: String { Self.readableIdentifier(schema) + "." + Self.readableIdentifier(name) }

    /// `name` as is when SQL takes it unquoted (lower case, digits, `_`, not a reserved word),
    /// else double-quoted.
    public static func readableIdentifier(_ name: String) -> String {
        let plain = name.first.map { $0 == "_" || ($0.isASCII && $0.isLowercase) } == true
            && name.allSatisfy { $0 == "_" || ($0.isASCII && ($0.isLowercase || $0.isNumber)) }
        return plain && !reservedWords.contains(name) ? name : PostgresConnection.quoteIdentifier(name)
    }

    /// PostgreSQL's reserved key words (also those reserved as type or function names).
    private static let reservedWords: Set<String> = [
        "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric", "authorization", "binary", "both",
        "case", "cast", "check", "collate", "collation", "column", "concurrently", "constraint", "create", "cross",
        "current_catalog", "current_date", "current_role", "current_schema", "current_time", "current_timestamp",
        "current_user", "default", "deferrable", "desc", "distinct", "do", "else", "end", "except", "false", "fetch",
        "for", "foreign", "freeze", "from", "full", "grant", "group", "having", "ilike", "in", "initially", "inner",
        "intersect", "into", "is", "isnull", "join", "lateral", "leading", "left", "like", "limit", "localtime",
        "localtimestamp", "natural", "not", "notnull", "null", "offset", "on", "only", "or", "order", "outer",
        "overlaps", "placing", "primary", "references", "returning", "right", "select", "session_user", "similar",
        "some", "symmetric", "system_user", "table", "tablesample", "then", "to", "trailing", "true", "union", "unique",
        "user", "using", "variadic", "verbose", "when", "where", "window", "with",
    ]

    public static func < (lhs: TableName, rhs: TableName) -> Bool {
        (lhs.schema, lhs.name) < (rhs.schema, rhs.name)
    }
}
