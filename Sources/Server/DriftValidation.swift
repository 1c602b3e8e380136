import Foundation
import Indexing
import Sync

/// What the drift endpoints (`validate`, `validate-all`, `fix-drift`) call: by default
/// ``AgentDriftValidation``, which hands the request to the running agent's validator.
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
    /// Documents rendered from an older version of their row, or edited in the index.
    public var stale: Int
    /// Rows in the dead letters (their latest change could not be indexed).
    public var deadLettered: Int?
    /// Ids that kept changing through every re-check (not drift; validate again later).
    public var unsettled: Int?
    /// `in_sync`, `drifted` or `unsettled` (after a repair: of the closing validation).
    public var status: String?
    /// The validation record (`tidemark validations`).
    public var validationID: String?
    /// The job queued to repair the differences (``DriftValidation/fixDrift(entity:)``), if any.
    public var repairJobID: String?
    /// The repair job's final status.
    public var repairJobStatus: String?
    /// Unix seconds.
    public var finishedAt: Double

    public init(
        entity: String, checked: Int, missing: Int, orphaned: Int, stale: Int, deadLettered: Int? = nil, unsettled: Int? = nil,
        status: String? = nil, validationID: String? = nil, repairJobID: String? = nil, repairJobStatus: String? = nil,
        finishedAt: Double = Date().timeIntervalSince1970
    ) {
        self.entity = entity
        self.checked = checked
        self.missing = missing
        self.orphaned = orphaned
        self.stale = stale
        self.deadLettered = deadLettered
        self.unsettled = unsettled
        self.status = status
        self.validationID = validationID
        self.repairJobID = repairJobID
        self.repairJobStatus = repairJobStatus
        self.finishedAt = finishedAt
    }
}

/// The drift endpoints on the running agent's validator: each request is queued for the agent's
/// ``Sync/ValidationRunner`` (``Sync/ValidationRequests``), which runs validations one at a time,
/// and the response is sent once it finished. `fix-drift` is a repair (`tidemark repair`): the
/// validation, one `ids` job through the pipeline, and a closing validation; its report gives what
/// was found and queued, the job, and the closing validation's status.
public struct AgentDriftValidation: DriftValidation {
    let agent: Agent

    public init(agent: Agent) {
        self.agent = agent
    }

    public func validate(entity: String) async throws -> DriftReport {
        let record = try await run(entity, kind: .validate)
        guard let result = record.result else { throw Self.failure(record) }
        return DriftReport(
            entity: entity, checked: result.sourceRows, missing: result.missing.count, orphaned: result.orphaned.count,
            stale: result.stale.count, deadLettered: result.deadLettered.count, unsettled: result.unsettled.count,
            status: result.status.rawValue, validationID: record.id, finishedAt: record.finishedAt ?? Date().timeIntervalSince1970)
    }

    public func fixDrift(entity: String) async throws -> DriftReport {
        let record = try await run(entity, kind: .repair)
        guard let repair = record.repair else { throw Self.failure(record) }
        let before = repair.before
        return DriftReport(
            entity: entity, checked: before.sourceRows, missing: repair.missing, orphaned: repair.orphaned, stale: repair.stale,
            deadLettered: repair.deadLettered, unsettled: before.unsettled.count, status: record.result?.status.rawValue,
            validationID: record.id, repairJobID: repair.jobID, repairJobStatus: repair.jobStatus,
            finishedAt: record.finishedAt ?? Date().timeIntervalSince1970)
    }

    private func run(_ entity: String, kind: ValidationRecord.Kind) async throws -> ValidationRecord {
        let runtime = try agent.requireRuntime()
        let queued = try await ValidationRequests.submit(entity: entity, kind: kind, trigger: "api", store: runtime.store)
        let record = try await ValidationRequests.wait(for: queued.id, store: runtime.store)
        if record.status == .skipped {
            throw ServerError(.conflict, record.error ?? "\(entity) is being backfilled or rebuilt; validate once the job finished")
        }
        if record.status == .failed { throw Self.failure(record) }
        return record
    }

    private static func failure(_ record: ValidationRecord) -> ServerError {
        ServerError(.unavailable, "validation \(record.id) of \(record.entity) failed: \(record.error ?? "no result")")
    }
}
