import Capture
import Indexing
import Postgres

/// Changes waiting to be applied, coalesced per document: only the last change of each key counts.
struct PendingBatch {
    struct Key: Hashable {
        var entity: String
        var id: String
    }

    enum Operation {
        /// Values of the entity's select columns (unchanged TOAST values still marked as such).
        case upsert(values: [String: ColumnValue])
        case delete
    }

    struct Entry {
        var operation: Operation
        var lsn: LSN
    }

    private(set) var entries: [Key: Entry] = [:]
    /// Rows of a rebuild's chunks, for the generation being built only.
    private(set) var targeted: [Key: (generation: Int, values: [String: ColumnValue], lsn: LSN)] = [:]
    /// Entities truncated in this batch (their earlier entries were dropped).
    private(set) var truncates: [String] = []
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

    var isEmpty: Bool { entries.isEmpty && targeted.isEmpty && truncates.isEmpty && checkpoint == nil && jobs.isEmpty && chunkTokens.isEmpty }

    private mutating func touch(_ size: Int) {
        changeCount += 1
        bytes += size
        if startedAt == nil { startedAt = .now }
    }

    mutating func upsert(_ key: Key, values: [String: ColumnValue], lsn: LSN) {
        var merged = values
        // A later update that did not carry a TOAST value keeps the one an earlier change carried.
        if case .upsert(let previous)? = entries[key]?.operation {
            for (column, value) in merged where value == .unchangedToast {
                if let earlier = previous[column] { merged[column] = earlier }
            }
        }
        entries[key] = Entry(operation: .upsert(values: merged), lsn: lsn)
        // A rebuild chunk's row of the same key is older: this version goes to every generation.
        targeted[key] = nil
        touch(values.values.reduce(48) { total, value in
            if case .text(let text) = value { return total + text.utf8.count }
            return total + 8
        })
    }

    mutating func upsertTargeted(_ key: Key, generation: Int, values: [String: ColumnValue], lsn: LSN) {
        targeted[key] = (generation, values, lsn)
        touch(values.values.reduce(48) { total, value in
            if case .text(let text) = value { return total + text.utf8.count }
            return total + 8
        })
    }

    mutating func delete(_ key: Key, lsn: LSN) {
        entries[key] = Entry(operation: .delete, lsn: lsn)
        // Deletes are applied before a batch's chunk rows: drop the chunk row, or it would come back.
        targeted[key] = nil
        touch(48)
    }

    mutating func truncate(_ entity: String) {
        entries = entries.filter { $0.key.entity != entity }
        targeted = targeted.filter { $0.key.entity != entity }
        if !truncates.contains(entity) { truncates.append(entity) }
        touch(16)
    }
}
