import Foundation

/// What the drift endpoints (`validate`, `validate-all`, `fix-drift`) call. The drift validator of
/// `Sources/Sync/Validation` is wired in by conforming an adapter to this protocol and passing it
/// to ``APIServer`` — until then the endpoints answer 501 `not_implemented` with that explanation.
public protocol DriftValidation: Sendable {
    /// Compares the entity's rows with its documents, reading both in key ranges.
    func validate(entity: String) async throws -> DriftReport
    /// Validates, then queues the differing keys for re-indexing through the backfill path.
    func fixDrift(entity: String) async throws -> DriftReport
}

/// What one validation found.
public struct DriftReport: Sendable, Codable, Equatable {
    public var entity: String
    /// Rows compared.
    public var checked: Int
    /// Rows without a document.
    public var missing: Int
    /// Documents without a row.
    public var orphaned: Int
    /// Documents rendered from an older version of their row.
    public var stale: Int
    /// The job queued to repair the differences (``DriftValidation/fixDrift(entity:)``), if any.
    public var repairJobID: String?
    /// Unix seconds.
    public var finishedAt: Double

    public init(entity: String, checked: Int, missing: Int, orphaned: Int, stale: Int, repairJobID: String? = nil, finishedAt: Double = Date().timeIntervalSince1970) {
        self.entity = entity
        self.checked = checked
        self.missing = missing
        self.orphaned = orphaned
        self.stale = stale
        self.repairJobID = repairJobID
        self.finishedAt = finishedAt
    }
}
