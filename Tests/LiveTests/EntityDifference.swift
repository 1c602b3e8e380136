/// What differs between one entity's documents and its table.
struct EntityDifference: Sendable {
    var table: SourceTable
    var sourceRows: Int
    var documents: Int
    /// Live rows without a document.
    var missing: [String] = []
    /// Documents without a live row (orphans: deleted, truncated, moved or never committed rows).
    var extra: [String] = []
    /// Documents whose content, hash or metadata differ from the row's latest committed version.
    var stale: [(id: String, problem: String)] = []

    var isEmpty: Bool { missing.isEmpty && extra.isEmpty && stale.isEmpty }

    /// Every id that is wrong.
    var wrongIDs: [String] { missing + extra + stale.map(\.id) }

    /// A report naming at most `limit` ids of each kind.
    func summary(limit: Int = 15) -> String {
        func list(_ ids: [String]) -> String {
            ids.prefix(limit).joined(separator: ", ") + (ids.count > limit ? ", … (\(ids.count - limit) more)" : "")
        }
        var lines = ["\(table.entity) (\(table.rawValue)): \(sourceRows) rows, \(documents) documents"]
        if !missing.isEmpty { lines.append("  missing \(missing.count): \(list(missing))") }
        if !extra.isEmpty { lines.append("  extra \(extra.count): \(list(extra))") }
        if !stale.isEmpty {
            lines.append("  stale \(stale.count):")
            for item in stale.prefix(limit) { lines.append("    \(item.id): \(item.problem)") }
            if stale.count > limit { lines.append("    … (\(stale.count - limit) more)") }
        }
        return lines.joined(separator: "\n")
    }
}
