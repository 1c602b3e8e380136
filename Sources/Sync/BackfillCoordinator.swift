import Capture
import Foundation
import Indexing
import Postgres
import Synchronization

/// The meeting point of backfill workers and the pipeline for DBLog-style watermark chunks.
///
/// A worker registers a chunk, writes a low watermark (L) into the WAL, reads the chunk in its own
/// short REPEATABLE READ transaction together with that transaction's snapshot, hands the rows here,
/// and writes a high watermark (H). The pipeline, reading the stream in commit order, reports every
/// changed key (``observe(xid:entity:id:)``), and the watermarks as they pass. At H the chunk is
/// released without the rows that a transaction *invisible to the chunk's snapshot* changed before H:
/// the stream already carries a newer version of those. The argument is in `Docs/backfill.md`.
final class BackfillCoordinator: Sendable {
    /// The prefix of watermark messages in the WAL.
    static let prefix = "tidemark.watermark"

    /// A transaction snapshot (`pg_current_snapshot()`): xids at or past `xmax`, and those in `xip`,
    /// were not visible.
    struct Snapshot: Sendable, Equatable {
        var xmin: UInt64
        var xmax: UInt64
        var inProgress: Set<UInt64>

        /// Parses `xmin:xmax:xip1,xip2`.
        init?(_ text: String) {
            let parts = text.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 3, let xmin = UInt64(parts[0]), let xmax = UInt64(parts[1]) else { return nil }
            self.xmin = xmin
            self.xmax = xmax
            inProgress = Set(parts[2].split(separator: ",").compactMap { UInt64($0) })
        }

        /// Whether the transaction with 32-bit id `xid` (as pgoutput reports it) was invisible.
        /// The full id is rebuilt from the epoch of `xmax`; ids in the stream are recent.
        func isInvisible(_ xid: UInt32) -> Bool {
            var full = (xmax & ~0xFFFF_FFFF) | UInt64(xid)
            if full > xmax &+ (1 << 31) && full >= (1 << 32) { full -= 1 << 32 }
            return full >= xmax || inProgress.contains(full)
        }
    }

    /// One row of a chunk.
    struct Row: Sendable {
        var id: String
        var values: [String: String?]
        var partition: String?
    }

    /// A chunk read by a worker, ready to be released at its high watermark.
    struct ChunkData: Sendable {
        var entity: String
        /// Rows by document id, with the entity's select columns as text (and, for a partitioned
        /// table, the OID of the leaf partition holding the row).
        var rows: [Row]
        /// For `ids` jobs: ids asked for but not found (their documents are removed).
        var missing: [String]
        var snapshot: Snapshot
        /// The job's progress once this chunk is durable.
        var job: JobRecord
        /// For a rebuild: the generation being built (the only one these rows go to).
        var generation: Int?
    }

    /// What the pipeline adds to its batch at a high watermark.
    struct Release: Sendable {
        var entity: String
        var rows: [Row]
        var missing: [String]
        var job: JobRecord
        var dropped: Int
        var generation: Int?
        /// The chunk must be read again: a transaction committed in the stream before the low
        /// watermark was still invisible to its snapshot (its commit record was written, but other
        /// sessions could not see it yet — e.g. while it waited for a synchronous standby). The rows
        /// it changed were read in their old version, and which rows those are is unknown. Nothing of
        /// the chunk is applied, not even the job's progress.
        var retry = false
    }

    private struct Change {
        var xid: UInt32
        var entity: String
        var id: String
    }

    private struct Chunk {
        var entity: String
        var data: ChunkData?
        var windowOpen = false
        /// Changes seen from shortly before L up to now.
        var changes: [Change] = []
        var waiter: CheckedContinuation<Void, any Error>?
        var applied = false
        /// Released as ``Release/retry``: the worker reads it again.
        var retried = false
        /// How many commits the stream had delivered when the low watermark passed.
        var commitsBeforeLow = 0
        /// Transactions that truncated the table (partition `nil`) or one of its partitions while the
        /// chunk was open.
        var truncatedBy: [(xid: UInt32, partition: String?)] = []
    }

    private struct State {
        var chunks: [String: Chunk] = [:]
        var watched: [String: Int] = [:]
        /// Jobs with a chunk being read again: their later chunks (already in the stream) are
        /// retried too, so the job's durable cursor never passes the retried chunk.
        var retrying: Set<String> = []
        /// The ids of the last ``commitHistory`` transactions committed in the stream (a ring,
        /// allocated once: an array grown commit by commit stalled the stream when it reallocated).
        var commits = [UInt32](repeating: 0, count: BackfillCoordinator.commitHistory)
        var commitCount = 0
    }

    /// How many recent commits are remembered for the check at a high watermark: a transaction
    /// invisible to a chunk's snapshot although it committed this many commits before the low
    /// watermark would go unnoticed. 262 144 ids, 1 MiB.
    static let commitHistory = 262_144

    private let state = Mutex(State())

    // MARK: - Worker side

    func register(_ token: String, entity: String) {
        state.withLock {
            $0.chunks[token] = Chunk(entity: entity)
            $0.watched[entity, default: 0] += 1
        }
    }

    func provide(_ token: String, _ data: ChunkData) {
        state.withLock { $0.chunks[token]?.data = data }
    }

    /// Waits until the batch carrying the chunk is durable. Returns `false` when the chunk was
    /// released for a retry (nothing of it was applied).
    func awaitApplied(_ token: String) async throws -> Bool {
        let retried = try await awaitDurable(token)
        return !retried
    }

    /// A worker that re-reads a retried chunk resumes its job: its next chunks count again.
    func resume(job: String) {
        state.withLock { _ = $0.retrying.remove(job) }
    }

    private func awaitDurable(_ token: String) async throws -> Bool {
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let done: Bool = state.withLock { state in
                    guard let chunk = state.chunks[token] else { return true }
                    if chunk.applied || Task.isCancelled { return true }
                    state.chunks[token]?.waiter = continuation
                    return false
                }
                if done {
                    let applied = state.withLock { $0.chunks[token]?.applied ?? true }
                    if applied { continuation.resume() } else { continuation.resume(throwing: CancellationError()) }
                }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Void, any Error>? in
                defer { state.chunks[token]?.waiter = nil }
                return state.chunks[token]?.waiter
            }
            waiter?.resume(throwing: CancellationError())
        }
        let retried = state.withLock { $0.chunks[token]?.retried ?? false }
        finish(token)
        return retried
    }

    /// Forgets a chunk (done, failed or cancelled).
    func finish(_ token: String) {
        state.withLock { state in
            guard let chunk = state.chunks.removeValue(forKey: token) else { return }
            state.watched[chunk.entity, default: 1] -= 1
            if state.watched[chunk.entity] ?? 0 <= 0 { state.watched[chunk.entity] = nil }
        }
    }

    // MARK: - Pipeline side (called in stream order)

    /// Whether any chunk is registered (a cheap check for the hot path).
    var isActive: Bool { state.withLock { !$0.watched.isEmpty } }

    /// Records that the stream changed `id` of `entity` in transaction `xid`.
    func observe(xid: UInt32, entity: String, id: String) {
        state.withLock { state in
            guard state.watched[entity] != nil else { return }
            let change = Change(xid: xid, entity: entity, id: id)
            for token in state.chunks.keys where state.chunks[token]?.windowOpen == true && state.chunks[token]?.entity == entity {
                state.chunks[token]?.changes.append(change)
            }
        }
    }

    /// Records that transaction `xid` committed; called by the pipeline for every transaction, in
    /// stream order.
    func observeCommit(xid: UInt32) {
        state.withLock { state in
            state.commits[state.commitCount % Self.commitHistory] = xid
            state.commitCount += 1
        }
    }

    /// Records a TRUNCATE of `entity` (or of one of its partitions) in transaction `xid`: every row
    /// of open chunks (in that partition) counts as changed.
    func observeTruncate(xid: UInt32, entity: String, partition: String? = nil) {
        state.withLock { state in
            for token in state.chunks.keys where state.chunks[token]?.entity == entity {
                state.chunks[token]?.truncatedBy.append((xid, partition))
            }
        }
    }

    /// A watermark passed in the stream. Returns the chunk to add to the batch at a high watermark.
    func watermark(_ content: [UInt8]) -> (token: String, release: Release?)? {
        let text = String(decoding: content, as: UTF8.self)
        guard text.count > 2, let kind = text.first, text.dropFirst().first == "|" else { return nil }
        let token = String(text.dropFirst(2))
        return state.withLock { state -> (String, Release?)? in
            guard var chunk = state.chunks[token] else { return nil }  // another run's watermark
            switch kind {
            case "L":
                chunk.windowOpen = true
                chunk.commitsBeforeLow = state.commitCount
                // Transactions committed before L but invisible to the chunk's snapshot are caught by
                // the commit history at H (the chunk is then read again); the window collects the rest.
                chunk.changes = []
                state.chunks[token] = chunk
                return (token, nil)
            case "H":
                guard let data = chunk.data, chunk.windowOpen else { return nil }
                // Committed before L yet invisible to the snapshot: its streamed changes may be
                // newer than rows of the chunk, and they are not in the window. Read it again.
                var early = false
                let oldest = max(0, chunk.commitsBeforeLow - Self.commitHistory)
                var position = chunk.commitsBeforeLow - 1
                while position >= oldest && !early {
                    early = data.snapshot.isInvisible(state.commits[position % Self.commitHistory])
                    position -= 1
                }
                if early || state.retrying.contains(data.job.id) {
                    state.retrying.insert(data.job.id)
                    chunk.windowOpen = false
                    chunk.changes = []
                    chunk.retried = true
                    state.chunks[token] = chunk
                    return (token, Release(
                        entity: data.entity, rows: [], missing: [], job: data.job, dropped: data.rows.count,
                        generation: data.generation, retry: true))
                }
                let stale = Set(chunk.changes.filter { data.snapshot.isInvisible($0.xid) }.map(\.id))
                // A truncate the chunk's snapshot did not see removes every row the chunk read (in
                // the truncated partition).
                let invisible = chunk.truncatedBy.filter { data.snapshot.isInvisible($0.xid) }
                let truncated = invisible.contains { $0.partition == nil }
                let truncatedPartitions = Set(invisible.compactMap(\.partition))
                let rows = truncated ? [] : data.rows.filter {
                    !stale.contains($0.id) && !($0.partition.map(truncatedPartitions.contains) ?? false)
                }
                let missing = truncated ? [] : data.missing.filter { !stale.contains($0) }
                chunk.windowOpen = false
                chunk.changes = []
                state.chunks[token] = chunk
                return (token, Release(
                    entity: data.entity, rows: rows, missing: missing, job: data.job, dropped: data.rows.count - rows.count,
                    generation: data.generation))
            default:
                return nil
            }
        }
    }

    /// The batches carrying these chunks are durable.
    func applied(_ tokens: [String]) {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, any Error>] in
            var waiters: [CheckedContinuation<Void, any Error>] = []
            for token in tokens {
                state.chunks[token]?.applied = true
                if let waiter = state.chunks[token]?.waiter {
                    waiters.append(waiter)
                    state.chunks[token]?.waiter = nil
                }
            }
            return waiters
        }
        for waiter in waiters { waiter.resume() }
    }
}
