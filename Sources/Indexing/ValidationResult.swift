import Foundation

/// The outcome of validating one entity: what differs between its table and its documents, how
/// sure that is, and what it cost.
///
/// The ids in each class are disjoint. Only differences that persisted through re-checks after the
/// index had caught up count (`Docs/validation.md`); ids that kept changing through every re-check
/// are in ``unsettled``, which is not drift.
public struct ValidationResult: Sendable, Equatable, Codable {
    public enum Status: String, Sendable, Codable, CaseIterable {
        /// Every row has exactly one document, rendered from its latest version; no document lacks a
        /// row; no row waits in the dead letters.
        case inSync = "in_sync"
        /// At least one id is missing, orphaned, stale or dead-lettered.
        case drifted
        /// No drift was confirmed, but some ids changed through every re-check (changes in flight);
        /// a later validation decides them.
        case unsettled
    }

    /// One class of difference: how many ids, and some of them.
    public struct Finding: Sendable, Equatable, Codable {
        public var count = 0
        /// At most ``ValidationResult/sampleLimit`` ids, sorted.
        public var sample: [String] = []

        public init(count: Int = 0, sample: [String] = []) {
            self.count = count
            self.sample = sample
        }

        /// The finding for these ids: their count and the first ``ValidationResult/sampleLimit`` of them in order.
        public init(ids: some Collection<String>) {
            count = ids.count
            sample = Array(ids.sorted().prefix(ValidationResult.sampleLimit))
        }
    }

    /// What one side of the comparison read.
    public struct Reads: Sendable, Equatable, Codable {
        /// Source: rows the digests, listings and re-reads covered (hashed inside PostgreSQL, mostly).
        /// Index: documents the digests covered (digested inside the store from their checks, or
        /// read and hashed by the validator).
        public var rows = 0
        /// Bytes of the values this side returned to the validator (text forms; protocol framing
        /// not counted).
        public var bytes = 0
        /// Statements (source) or store reads (index).
        public var queries = 0
        /// Seconds spent waiting for this side's reads (source: its statements; index: the store's
        /// reads and the hashing of what they returned).
        public var seconds = 0.0

        public init(rows: Int = 0, bytes: Int = 0, queries: Int = 0, seconds: Double = 0) {
            self.rows = rows
            self.bytes = bytes
            self.queries = queries
            self.seconds = seconds
        }
    }

    /// Most ids kept per class.
    public static let sampleLimit = 20

    public var entity: String
    public var status: Status
    /// Unix seconds.
    public var startedAt: Double
    /// Seconds.
    public var duration: Double
    /// Rows with no document.
    public var missing = Finding()
    /// Documents with no row.
    public var orphaned = Finding()
    /// Documents whose source values (or content, or metadata) differ from what their row renders to now.
    public var stale = Finding()
    /// Rows in the dead letters (their latest change could not be indexed).
    public var deadLettered = Finding()
    /// Ids that changed through every re-check: in flight, not drift.
    public var unsettled = Finding()
    /// Rows of the table and documents of the entity's active generation, as the first pass counted them.
    public var sourceRows = 0
    public var documents = 0
    /// Key ranges compared at the first level, and how many of them differed.
    public var ranges = 0
    public var differingRanges = 0
    /// Ids compared row by row and re-checked.
    public var candidates = 0
    public var source = Reads()
    public var index = Reads()
    /// Whether the validator waited for the index to pass each source position it compared (an agent
    /// was streaming). `false`: the index was compared as it stood, so changes the agent had not
    /// applied yet count as drift.
    public var waitedForIndex = true
    /// The index's checkpoint when the comparison ended.
    public var checkpoint: String?
    /// Anything the reader should know (e.g. why the index was not waited for).
    public var note: String?

    public init(entity: String, status: Status, startedAt: Double, duration: Double) {
        self.entity = entity
        self.status = status
        self.startedAt = startedAt
        self.duration = duration
    }

    /// Whether nothing differs.
    public var isInSync: Bool { status == .inSync }

    /// Ids of every drift class (missing, orphaned, stale, dead-lettered).
    public var driftCount: Int { missing.count + orphaned.count + stale.count + deadLettered.count }
}
