import Foundation

/// A configured table of the differential test's schema and the entity that indexes it.
///
/// Four shapes of key: a bigint, a uuid, a composite of an int and a text, and a table partitioned by
/// list whose key includes the partition key (so a cross-partition move changes the document id).
enum SourceTable: String, CaseIterable, Comparable, Sendable {
    case accounts
    case notes
    case lines = "order_lines"
    case events

    static func < (lhs: SourceTable, rhs: SourceTable) -> Bool {
        lhs.order < rhs.order
    }

    private var order: Int { Self.allCases.firstIndex(of: self) ?? 0 }

    /// The entity name in the agent's configuration.
    var entity: String {
        switch self {
        case .accounts: "account"
        case .notes: "note"
        case .lines: "line"
        case .events: "event"
        }
    }

    /// Primary key columns, in key order (the order of a composite document id).
    var keyColumns: [String] {
        switch self {
        case .accounts, .notes: ["id"]
        case .lines: ["order_id", "line_code"]
        case .events: ["id", "region"]
        }
    }

    /// The content template of the entity.
    var template: String {
        switch self {
        case .accounts: "{{name}}\n{{bio}}"
        case .notes: "{{title}}\n{{body}}"
        case .lines: "{{sku}}: {{note}}"
        case .events: "{{kind}} {{payload}}"
        }
    }

    /// Metadata columns of the entity.
    var metadata: [String] {
        switch self {
        case .accounts: ["tier", "score"]
        case .notes: ["tag"]
        case .lines: ["qty", "status"]
        case .events: ["region", "severity"]
        }
    }

    /// Non-key columns the template reads.
    var contentColumns: [String] {
        switch self {
        case .accounts: ["name", "bio"]
        case .notes: ["title", "body"]
        case .lines: ["sku", "note"]
        case .events: ["kind", "payload"]
        }
    }

    /// Metadata columns that are neither key nor content: changing only these is a metadata-only update.
    var metadataOnlyColumns: [String] {
        metadata.filter { !keyColumns.contains($0) && !contentColumns.contains($0) }
    }

    /// The columns the oracle reads: key columns first, then what the template and metadata need.
    var oracleColumns: [String] {
        var seen = Set<String>()
        return (keyColumns + contentColumns + metadata).filter { seen.insert($0).inserted }
    }

    /// Parses a comma list of table or entity names (`TIDEMARK_DIFF_TABLES`); `nil` or empty means all.
    static func parse(_ list: String?) throws -> [SourceTable] {
        guard let list, !list.trimmingCharacters(in: .whitespaces).isEmpty else { return allCases }
        var tables: [SourceTable] = []
        for item in list.split(separator: ",") {
            let name = item.trimmingCharacters(in: .whitespaces).lowercased()
            guard let table = allCases.first(where: { $0.rawValue == name || $0.entity == name }) else {
                throw DifferentialTestError(
                    "TIDEMARK_DIFF_TABLES: unknown table '\(name)'; the tables are \(allCases.map(\.rawValue).joined(separator: ", "))")
            }
            if !tables.contains(table) { tables.append(table) }
        }
        return tables.sorted()
    }
}
