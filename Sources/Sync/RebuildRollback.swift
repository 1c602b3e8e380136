import Indexing

/// Undoes a completed rebuild: the generation that was active before it answers searches again, in
/// one store transaction. Both generations stay current (the pipeline writes both), so rolling back
/// loses nothing.
public enum RebuildRollback {
    public static func perform(_ job: JobRecord, store: any IndexStore) async throws -> GenerationChange {
        guard job.kind == .rebuild, job.status == .completed, let built = job.generation, let previous = job.previousGeneration else {
            throw SyncError(.configuration, "only a completed rebuild can be rolled back (\(job.id) is a \(job.kind.rawValue) job, \(job.status.rawValue))")
        }
        guard !job.rolledBack else { throw SyncError(.configuration, "\(job.id) was already rolled back") }
        let active = try await store.activeGeneration(job.entity)
        let maintained = try await store.generations(job.entity)
        guard active == built, maintained.contains(previous) else {
            throw SyncError(.configuration, "generation \(previous) of \(job.entity) is no longer kept (a later rebuild replaced it); nothing to roll back to")
        }
        var rolled = job
        rolled.rolledBack = true
        var batch = IndexBatch()
        let change = GenerationChange(active: previous, maintained: [previous, built])
        batch.generationChanges[job.entity] = change
        batch.jobs = [rolled]
        try await store.apply(batch, state: [:])
        return change
    }
}
