import Indexing

/// A row's key as the text forms of its key columns, in key order.
struct RowKey: Hashable, Sendable {
    var parts: [String]
    /// The document id the agent must use for this row.
    var documentID: String { DocumentID.make(parts) }
}

/// The keys of one table, with O(1) insert, remove and random pick, in an order that depends only on
/// the operations applied (never on hashing), so that a seed reproduces the same choices.
struct KeySpace: Sendable {
    private(set) var keys: [RowKey] = []
    private var positions: [RowKey: Int] = [:]

    var count: Int { keys.count }

    func contains(_ key: RowKey) -> Bool { positions[key] != nil }

    mutating func insert(_ key: RowKey) {
        guard positions[key] == nil else { return }
        positions[key] = keys.count
        keys.append(key)
    }

    mutating func remove(_ key: RowKey) {
        guard let position = positions.removeValue(forKey: key) else { return }
        let last = keys.removeLast()
        if position < keys.count {
            keys[position] = last
            positions[last] = position
        }
    }
}

/// The keys of the committed rows as the workload knows them (it is the only writer), so that it can
/// pick rows to change. The source database stays the oracle of the comparison; this model only
/// steers the generator, and is checked against the source after each round.
struct SourceModel: Sendable {
    private(set) var spaces: [SourceTable: KeySpace] = [:]
    /// Keys deleted lately, per table (most recent last), for targeted backfills of gone rows.
    private(set) var removed: [SourceTable: [RowKey]] = [:]
    /// The last number used for fresh keys.
    var counter: Int64 = 0

    func keys(_ table: SourceTable) -> KeySpace { spaces[table] ?? KeySpace() }

    mutating func add(_ key: RowKey, to table: SourceTable) {
        spaces[table, default: KeySpace()].insert(key)
    }

    mutating func remove(_ key: RowKey, from table: SourceTable) {
        spaces[table, default: KeySpace()].remove(key)
        var recent = removed[table] ?? []
        recent.append(key)
        if recent.count > 40 { recent.removeFirst(recent.count - 40) }
        removed[table] = recent
    }

    /// Takes the next number for a fresh key.
    mutating func nextNumber() -> Int64 {
        counter += 1
        return counter
    }
}
