import Foundation

/// A validation or repair as the index store keeps it: a request (queued by `tidemark validate`,
/// `tidemark repair`, the HTTP API or a schedule), then its run and outcome. The history of an
/// entity's validations is the list of its records.
public struct ValidationRecord: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, Codable, CaseIterable {
        /// Compare the table with the index and report.
        case validate
        /// Validate, feed the differing ids back through the backfill path, validate again.
        case repair
    }

    public enum Status: String, Sendable, Codable, CaseIterable {
        case queued, running, completed, failed
        /// Not run: a backfill of the entity was running (its rows are still arriving).
        case skipped

        /// Whether the record will change no more.
        public var isFinished: Bool { self == .completed || self == .failed || self == .skipped }
    }

    /// What a repair changed.
    public struct Repair: Sendable, Equatable, Codable {
        /// The validation that found the drift.
        public var before: ValidationResult
        /// The `ids` job that carried the repair (`nil` when there was nothing to repair).
        public var jobID: String?
        /// Ids queued, by the class they were found in.
        public var missing = 0
        public var stale = 0
        public var orphaned = 0
        public var deadLettered = 0
        /// The job's outcome: its status and the rows it read (ids no longer in the source are
        /// deleted from the index, the others written again).
        public var jobStatus: String?
        public var rowsRead = 0

        public init(before: ValidationResult) { self.before = before }

        /// Ids queued in all.
        public var queued: Int { missing + stale + orphaned + deadLettered }
    }

    public var id: String
    public var entity: String
    public var kind: Kind
    public var status: Status
    /// Who asked: `cli`, `api`, `schedule`.
    public var trigger: String
    /// Unix seconds.
    public var createdAt: Double
    public var startedAt: Double?
    public var finishedAt: Double?
    /// The validation's outcome; for a repair, the validation that ended it.
    public var result: ValidationResult?
    /// For a repair: what it found and changed.
    public var repair: Repair?
    /// Why it failed or was skipped.
    public var error: String?

    public init(id: String = ValidationRecord.newID(), entity: String, kind: Kind, trigger: String, createdAt: Double = Date().timeIntervalSince1970) {
        self.id = id
        self.entity = entity
        self.kind = kind
        self.status = .queued
        self.trigger = trigger
        self.createdAt = createdAt
    }

    /// A short unique id: `val-` and 10 hex digits.
    public static func newID() -> String {
        "val-" + String(UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(10)).lowercased()
    }
}
