import Foundation
import Indexing
import Logging

/// Repairs an entity's drift through the pipeline, never around it: validates, queues one `ids`
/// backfill job with every drifted id (missing, stale, orphaned and dead-lettered), waits until the
/// running agent has executed it, and validates again.
///
/// The job runs like every backfill (watermarked chunks in stream order, `Docs/backfill.md`): ids
/// whose row exists are rendered and written again, ids whose row is gone are deleted through the
/// pipeline (``BackfillCoordinator/Release/missing``), and a row that fails again stays in the dead
/// letters. So a repair can never undo a change the stream applied meanwhile. It needs a running
/// agent to execute the job.
struct DriftRepair: Sendable {
    let validator: Validator
    let logger: Logger
    /// How often the job's progress is read. Default 200 ms.
    var pollInterval: Duration = .milliseconds(200)

    init(validator: Validator, logger: Logger) {
        self.validator = validator
        self.logger = logger
    }

    /// Repairs `entity`; returns what was found and queued, and the closing validation.
    func repair(entity: String) async throws -> (repair: ValidationRecord.Repair, after: ValidationResult) {
        let store = validator.store
        let found = try await validator.inspect(entity: entity)
        var repair = ValidationRecord.Repair(before: found.result)
        repair.missing = found.missing.count
        repair.stale = found.stale.count
        repair.orphaned = found.orphaned.count
        repair.deadLettered = found.deadLettered.count
        let ids = found.drifted
        guard !ids.isEmpty else { return (repair, found.result) }

        var job = JobRecord(id: JobRecord.newID(), entity: entity, kind: .ids)
        job.ids = ids
        job.estimatedTotal = ids.count
        try await store.saveJob(job)
        repair.jobID = job.id
        logger.info(
            "repair queued",
            metadata: [
                "entity": "\(entity)", "job.id": "\(job.id)", "repair.missing": "\(repair.missing)", "repair.stale": "\(repair.stale)",
                "repair.orphaned": "\(repair.orphaned)", "repair.dead_letters": "\(repair.deadLettered)",
            ])
        while true {
            try await Task.sleep(for: pollInterval)
            guard let current = try await store.job(job.id) else {
                throw SyncError(.validation, "the repair job \(job.id) of \(entity) disappeared from the index")
            }
            if !current.status.isActive {
                job = current
                break
            }
        }
        repair.jobStatus = job.status.rawValue
        repair.rowsRead = job.processed
        let after = try await validator.validate(entity: entity)
        logger.info(
            "repair finished",
            metadata: ["entity": "\(entity)", "job.id": "\(job.id)", "job.status": "\(job.status.rawValue)", "validation.status": "\(after.status.rawValue)"])
        return (repair, after)
    }
}
