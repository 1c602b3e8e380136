import Capture
import Foundation
import Postgres

/// Writes a commented starter `tidemark.yml` from what catalog discovery found: one entity per
/// syncable table (its text columns in the content template, its short scalar columns as metadata),
/// the tables that cannot be synced listed in comments with the reason and the fix, and the source
/// checks (``SourceReadiness``) at the top.
///
/// Guarantee: the text loads with ``ConfigurationLoader`` unchanged (tested), and never holds a
/// password (the source URL is written redacted; the password goes into the environment).
public struct StarterConfiguration: Sendable {
    public struct Configuration: Sendable {
        /// The source URL as given; written with its password removed.
        public var sourceURL: String
        /// Index file to configure. Default `tidemark.db`.
        public var indexPath = "tidemark.db"
        /// API address to configure. Default `127.0.0.1:7601`.
        public var listen = "127.0.0.1:7601"
        /// Most columns of one table put into metadata. Default 8.
        public var maximumMetadataColumns = 8

        public init(sourceURL: String) { self.sourceURL = sourceURL }
    }

    public let configuration: Configuration

    public init(configuration: Configuration) {
        self.configuration = configuration
    }

    /// Types stored as short scalars: worth filtering on, not worth embedding.
    static let scalarTypes: [String] = [
        "smallint", "integer", "bigint", "numeric", "real", "double precision", "boolean", "date", "uuid", "money",
        "timestamp", "time", "interval",
    ]

    /// The configuration text.
    public func render(tables: [TableDescription], findings: [SourceReadiness.Finding], generatedAt: Date = Date()) -> String {
        var lines: [String] = []
        let url = Self.withoutPassword(configuration.sourceURL)
        lines.append("# tidemark.yml — written by `tidemark init` on \(ISO8601DateFormatter().string(from: generatedAt)).")
        lines.append("# Every key can be overridden by an environment variable named after its path")
        lines.append("# (source.url → TIDEMARK_SOURCE_URL); Docs/configuration.md lists every key and its default.")
        if !findings.isEmpty {
            lines.append("#")
            lines.append("# Source checks (run again with `tidemark init`):")
            for finding in findings {
                let label = finding.severity == .ok ? "ok" : finding.severity == .warning ? "WARNING" : "MUST FIX"
                lines.append(contentsOf: Self.comment("\(label): \(finding.message)", indent: "#   "))
            }
        }
        lines.append("")
        lines.append("source:")
        lines.append("  # A password never goes here: put it in TIDEMARK_SOURCE_URL, ~/.pgpass or PGPASSWORD.")
        lines.append("  url: \(Self.quoted(url))")
        lines.append("  slot: tidemark          # replication slot (one per agent; names are server-wide)")
        lines.append("  publication: tidemark   # created with the entity tables if missing")
        lines.append("")
        lines.append("index:")
        lines.append("  kind: sqlite            # or pgvector with url and schema")
        lines.append("  path: \(Self.quoted(configuration.indexPath))")
        lines.append("")
        lines.append("embedder:")
        lines.append("  kind: builtin           # lexical and offline; for semantic search use static or openai")
        lines.append("")
        lines.append("api:")
        lines.append("  listen: \(Self.quoted(configuration.listen))   # loopback; elsewhere set token_env or token_file")
        lines.append("")
        let syncable = tables.filter(\.isSyncable)
        var names = Set<String>()
        var entityLines: [String] = []
        var skipped: [(TableName, String)] = tables.filter { !$0.isSyncable }.map { ($0.table, $0.unsyncableReason ?? "cannot be synced") }
        for table in syncable {
            let columns = table.columns.filter { !$0.isGenerated && Self.isPlainName($0.name) }
            let text = columns.filter(\.isTextLike)
            let scalars = columns.filter { column in !column.isTextLike && Self.isShortScalar(column.type) }
            guard !text.isEmpty || !scalars.isEmpty else {
                skipped.append((table.table, "no column a template can read (generated columns and names with dots or spaces are left out). Fix: add an entity by hand with a content template"))
                continue
            }
            let name = Self.entityName(table.table, taken: names)
            names.insert(name)
            let content: String
            var note = "\(table.table), ≈ \(table.estimatedRows) rows, key \(table.keyColumns.joined(separator: ", "))"
            if text.isEmpty {
                content = scalars.map { "\($0.name): {{\($0.name)}}" }.joined(separator: "\n")
                note += "; no text columns, so the content lists its scalar columns"
            } else {
                content = text.map { "{{\($0.name)}}" }.joined(separator: "\n")
            }
            let metadata = scalars.filter { !table.keyColumns.contains($0.name) }
                .prefix(configuration.maximumMetadataColumns).map(\.name)
            entityLines.append("  \(name):")
            entityLines.append(contentsOf: Self.comment(note, indent: "    # "))
            entityLines.append("    table: \(Self.quoted(Self.configText(table.table)))")
            entityLines.append("    content: \(Self.quoted(content))")
            entityLines.append("    metadata: [\(metadata.map { Self.quoted($0) }.joined(separator: ", "))]")
        }
        if entityLines.isEmpty {
            lines.append("# No table can be synced yet (see below). Add one, e.g.:")
            lines.append("# entities:")
            lines.append("#   product: { table: public.products, content: \"{{name}}\\n{{description}}\", metadata: [price] }")
        } else {
            lines.append("entities:")
            lines.append(contentsOf: entityLines)
        }
        if !skipped.isEmpty {
            lines.append("")
            lines.append("# Not synced:")
            for (table, reason) in skipped {
                lines.append(contentsOf: Self.comment("\(table): \(reason)", indent: "#   "))
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func isShortScalar(_ type: String) -> Bool {
        if type.hasSuffix("[]") { return false }
        if scalarTypes.contains(where: { type == $0 || type.hasPrefix($0 + "(") || type.hasPrefix($0 + " ") }) { return true }
        return false
    }

    static func isPlainName(_ name: String) -> Bool {
        name.range(of: "^[A-Za-z_][A-Za-z0-9_]*$", options: .regularExpression) != nil
    }

    /// The table's name as an entity name (`schema_table` outside `public` or on a clash).
    static func entityName(_ table: TableName, taken: Set<String>) -> String {
        func clean(_ text: String) -> String {
            var result = String(text.map { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" ? $0 : "_" })
            if let first = result.first, !(first.isLetter || first == "_") || !first.isASCII { result = "t_" + result }
            return result.isEmpty ? "t" : result
        }
        var name = clean(table.schema == "public" ? table.name : "\(table.schema)_\(table.name)")
        if taken.contains(name) { name = clean("\(table.schema)_\(table.name)") }
        var candidate = name
        var suffix = 2
        while taken.contains(candidate) {
            candidate = "\(name)_\(suffix)"
            suffix += 1
        }
        return candidate
    }

    /// `schema.name` as ``TableName/init(parsing:)`` reads it back.
    static func configText(_ table: TableName) -> String {
        func part(_ text: String) -> String {
            text.contains(".") || text.contains("\"") ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
        }
        return part(table.schema) + "." + part(table.name)
    }

    /// A YAML double-quoted scalar.
    static func quoted(_ text: String) -> String {
        var result = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": result += "\\\""
            case "\\": result += "\\\\"
            case "\n": result += "\\n"
            case "\t": result += "\\t"
            default:
                if scalar.value < 0x20 { result += String(format: "\\x%02X", scalar.value) } else { result.unicodeScalars.append(scalar) }
            }
        }
        return result + "\""
    }

    /// `text` as comment lines of at most ≈ 100 characters.
    static func comment(_ text: String, indent: String) -> [String] {
        var lines: [String] = []
        var current = ""
        for word in text.split(separator: " ", omittingEmptySubsequences: true) {
            if !current.isEmpty && current.count + word.count + 1 > 100 - indent.count {
                lines.append(indent + current)
                current = ""
            }
            current += current.isEmpty ? String(word) : " " + word
        }
        if !current.isEmpty { lines.append(indent + current) }
        return lines
    }

    /// The URL with any password removed (URL form `user:secret@`, or conninfo `password=`).
    static func withoutPassword(_ url: String) -> String {
        if let scheme = url.range(of: "://"), let at = url[scheme.upperBound...].firstIndex(of: "@") {
            let credentials = url[scheme.upperBound..<at]
            if let colon = credentials.firstIndex(of: ":") {
                return String(url[..<colon]) + String(url[at...])
            }
            return url
        }
        return url.split(separator: " ").filter { !$0.lowercased().hasPrefix("password=") }.joined(separator: " ")
    }
}
