import Foundation
import Postgres

/// A backfill job as persisted in the index store.
public struct JobRecord: Sendable, Equatable, Codable {
    public enum Status: String, Sendable, Codable, CaseIterable {
        case queued, running, paused, completed, failed, cancelled

        /// Whether the job can still do work.
        public var isActive: Bool { self == .queued || self == .running || self == .paused }
    }

    public enum Kind: String, Sendable, Codable {
        /// Every row of the entity (an operator's request, or the initial load).
        case backfill
        /// Only the given ids.
        case ids
        /// Every row into a new generation beside the live one; search switches to it atomically at
        /// the end, and the old one is kept for rollback.
        case rebuild
    }

    /// What the operator asked for; only the command line writes it, the agent obeys it.
    public enum Control: String, Sendable, Codable {
        case run, pause, cancel
    }

    public var id: String
    public var entity: String
    public var kind: Kind
    public var status: Status
    public var control: Control = .run
    /// Unix seconds.
    public var createdAt: Double
    public var startedAt: Double?
    public var finishedAt: Double?
    public var estimatedTotal: Int = 0
    /// Rows read and handed to the pipeline (after watermark filtering).
    public var processed: Int = 0
    public var succeeded: Int = 0
    public var failed: Int = 0
    public var lastError: String?
    /// Rows per second over the job's running time.
    public var rate: Double = 0
    /// Key of the last row of the last completed chunk (text forms), `nil` before the first chunk.
    public var cursor: [String?]?
    /// For `ids` jobs: the document ids still to process.
    public var ids: [String]?
    public var chunkSize: Int = 1_000
    /// Chunks whose rows were read again after a restart (for operators and tests).
    public var chunks: Int = 0
    /// Bytes (text forms of the values) of the largest chunk read so far; `nil` before the first.
    public var largestChunkBytes: Int?
    /// When set: at completion, documents of the entity older than this position are removed (their
    /// rows no longer exist). Used when a whole entity is loaded again.
    public var sweepBefore: LSN?
    /// For the load of an entity under a (new) replication slot: the slot's incarnation to record as
    /// loaded once the job completes.
    public var loadsIncarnation: String?
    /// For a rebuild: the generation being built, and the one that was active before the switch.
    public var generation: Int?
    public var previousGeneration: Int?
    /// A completed rebuild that was rolled back to `previousGeneration`.
    public var rolledBack = false

    public init(id: String, entity: String, kind: Kind, status: Status = .queued, createdAt: Double = Date().timeIntervalSince1970) {
        self.id = id
        self.entity = entity
        self.kind = kind
        self.status = status
        self.createdAt = createdAt
    }

    /// Seconds left at the current rate, when it can be estimated.
    public var eta: Double? {
        guard rate > 0, estimatedTotal > processed, status == .running else { return nil }
        return Double(estimatedTotal - processed) / rate
    }

    /// A short unique id: `job-` and 10 hex digits.
    public static func newID() -> String {
        "job-" + String(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(10)).lowercased()
    }
}
