import Capture
import Indexing
import Postgres

/// Changes waiting to be applied, coalesced per document: only the last change of each key counts.
struct PendingBatch {
    /// A document's entity and id: the store's own key type, so nothing converts between the two.
    typealias Key = DocumentKey

    enum Operation {
        /// Values of the entity's select columns (unchanged TOAST values still marked as such).
        case upsert(values: [String: ColumnValue])
        case delete
    }

    struct Entry {
        var operation: Operation
        var lsn: LSN
        /// The leaf partition of the row (partitioned tables only).
        var partition: String?
        /// The key was deleted earlier in this batch and is now another row's (a re-inserted or
        /// re-keyed row): the stored document belongs to the deleted row, so its values must not
        /// fill this row's unchanged TOAST values.
        var followsDelete = false
        /// The transaction of the last change (0 for rows read by a backfill).
        var xid: UInt32 = 0
    }

    private(set) var entries: [Key: Entry] = [:]
    /// Rows of a rebuild's chunks, for the generation being built only.
    private(set) var targeted: [Key: (generation: Int, values: [String: ColumnValue], lsn: LSN, partition: String?)] = [:]
    /// Entities truncated in this batch (their earlier entries were dropped).
    private(set) var truncates: [String] = []
    /// Partitions truncated in this batch, by entity (the earlier entries of their rows were dropped).
    private(set) var partitionTruncates: [String: [String]] = [:]
    /// The position to record once this batch is durable.
    var checkpoint: LSN?
    private(set) var changeCount = 0
    private(set) var bytes = 0
    private(set) var startedAt: ContinuousClock.Instant?
    /// Commit times (µs since 2000-01-01) of the transactions whose last change is in this batch.
    var commitTimes: [Int64] = []
    /// Backfill job progress to write with this batch, and the chunks it completes.
    var jobs: [JobRecord] = []
    var chunkTokens: [String] = []

    var isEmpty: Bool { entries.isEmpty && targeted.isEmpty && truncates.isEmpty && partitionTruncates.isEmpty && checkpoint == nil && jobs.isEmpty && chunkTokens.isEmpty }

    private mutating func touch(_ size: Int) {
        changeCount += 1
        bytes += size
        if startedAt == nil { startedAt = .now }
    }

    mutating func upsert(_ key: Key, values: [String: ColumnValue], lsn: LSN, partition: String? = nil, xid: UInt32 = 0) {
        var merged = values
        var followsDelete = false
        switch entries[key]?.operation {
        case .delete?: followsDelete = true
        case .upsert?: followsDelete = entries[key]?.followsDelete ?? false
        case nil: break
        }
        // A later update that did not carry a TOAST value keeps the one an earlier change carried.
        if case .upsert(let previous)? = entries[key]?.operation {
            for (column, value) in merged where value == .unchangedToast {
                if let earlier = previous[column] { merged[column] = earlier }
            }
        }
        entries[key] = Entry(operation: .upsert(values: merged), lsn: lsn, partition: partition, followsDelete: followsDelete, xid: xid)
        // A rebuild chunk's row of the same key is older: this version goes to every generation.
        targeted[key] = nil
        touch(values.values.reduce(48) { total, value in
            if case .text(let text) = value { return total + text.utf8.count }
            return total + 8
        })
    }

    mutating func upsertTargeted(_ key: Key, generation: Int, values: [String: ColumnValue], lsn: LSN, partition: String? = nil) {
        targeted[key] = (generation, values, lsn, partition)
        touch(values.values.reduce(48) { total, value in
            if case .text(let text) = value { return total + text.utf8.count }
            return total + 8
        })
    }

    mutating func delete(_ key: Key, lsn: LSN, partition: String? = nil) {
        entries[key] = Entry(operation: .delete, lsn: lsn, partition: partition)
        // Deletes are applied before a batch's chunk rows: drop the chunk row, or it would come back.
        targeted[key] = nil
        touch(48)
    }

    mutating func truncate(_ entity: String) {
        entries = entries.filter { $0.key.entity != entity }
        targeted = targeted.filter { $0.key.entity != entity }
        partitionTruncates[entity] = nil
        if !truncates.contains(entity) { truncates.append(entity) }
        touch(16)
    }

    /// A `TRUNCATE` of one leaf partition: earlier changes of rows in it no longer matter, and its
    /// stored documents are removed before the rest of the batch.
    ///
    /// Their entries become deletes rather than vanish: a row that moved into the partition earlier in
    /// the batch may still have a stored document filed under its old partition.
    mutating func truncate(_ entity: String, partition: String) {
        for (key, entry) in entries where key.entity == entity && entry.partition == partition {
            entries[key] = Entry(operation: .delete, lsn: entry.lsn, partition: partition)
        }
        for (key, row) in targeted where key.entity == entity && row.partition == partition {
            targeted[key] = nil
            if entries[key] == nil { entries[key] = Entry(operation: .delete, lsn: row.lsn, partition: partition) }
        }
        if !(partitionTruncates[entity]?.contains(partition) ?? false) { partitionTruncates[entity, default: []].append(partition) }
        touch(16)
    }
}
