import Foundation
import Indexing

/// What an operator can do to backfill jobs, shared by the command line and the HTTP API so both
/// behave exactly alike: queue a backfill, an ids job or a rebuild; pause, resume or cancel a job;
/// retry the rows a job failed on; roll a completed rebuild back.
///
/// Nothing here runs a job: it records the request in the index store, and the running agent's
/// scheduler picks it up (within a second) and obeys controls before its next chunk.
/// Every failure is a ``SyncError`` whose code says which kind (`not_found`, `conflict`,
/// `invalid_request`) and whose message says what to do.
public struct JobOperator: Sendable {
    /// The outcome of an action: the job concerned, a job queued by it (retry-failed), and a
    /// sentence for a person.
    public struct Outcome: Sendable {
        public var job: JobRecord
        public var queued: JobRecord?
        public var message: String
    }

    public enum Action: String, Sendable, CaseIterable {
        case pause, resume, cancel, rollback
        case retryFailed = "retry-failed"
    }

    public let store: any IndexStore
    /// Entities of the configuration; jobs are queued only for these.
    public let entities: [String]

    public init(store: any IndexStore, entities: [String]) {
        self.store = store
        self.entities = entities
    }

    /// Queues a job for `entity`: every row (`ids` empty), only `ids`, or a rebuild into a new
    /// generation. A second rebuild of an entity is refused while one is active.
    public func queue(entity: String, ids: [String] = [], rebuild: Bool = false) async throws -> JobRecord {
        guard entities.contains(entity) else {
            throw SyncError(.notFound, "unknown entity '\(entity)'; configured: \(entities.joined(separator: ", "))")
        }
        if rebuild && !ids.isEmpty { throw SyncError(.invalidRequest, "a rebuild rebuilds every row; it does not take ids") }
        if let empty = ids.firstIndex(where: \.isEmpty) { throw SyncError(.invalidRequest, "ids[\(empty)] is empty; give document ids (the key's text)") }
        if rebuild, let active = try await Agent.activeRebuild(of: entity, in: store) {
            // Two rebuilds at once would each drop the other's half-built generation.
            throw SyncError(
                .conflict,
                "a rebuild of \(entity) is already \(active.status.rawValue) (\(active.id)); wait for it to finish, or cancel it (tidemark job \(active.id) cancel)")
        }
        var job = JobRecord(id: JobRecord.newID(), entity: entity, kind: rebuild ? .rebuild : ids.isEmpty ? .backfill : .ids)
        if !ids.isEmpty {
            var seen = Set<String>()
            job.ids = ids.filter { seen.insert($0).inserted }
            job.estimatedTotal = job.ids?.count ?? 0
        }
        try await store.saveJob(job)
        return job
    }

    /// The job, or `not_found`.
    public func job(_ id: String) async throws -> JobRecord {
        guard let job = try await store.job(id) else { throw SyncError(.notFound, "no job \(id); list them with tidemark jobs or GET /api/jobs") }
        return job
    }

    /// Performs `action` on job `id`.
    public func perform(_ action: Action, on id: String) async throws -> Outcome {
        let job = try await job(id)
        switch action {
        case .pause, .resume, .cancel:
            guard job.status.isActive else {
                throw SyncError(.conflict, "\(id) is \(job.status.rawValue); only queued, running or paused jobs can be changed")
            }
            let control: JobRecord.Control = action == .pause ? .pause : action == .cancel ? .cancel : .run
            guard try await store.setJobControl(id, control) else { throw SyncError(.notFound, "no job \(id)") }
            var changed = job
            changed.control = control
            return Outcome(job: changed, message: "\(id): \(action.rawValue) requested; the agent applies it before its next chunk")
        case .rollback:
            let rolled: GenerationChange
            do {
                rolled = try await RebuildRollback.perform(job, store: store)
            } catch let error as SyncError where error.code == .configuration {
                throw SyncError(.conflict, error.message)
            }
            var changed = try await store.job(id) ?? job
            changed.rolledBack = true
            return Outcome(
                job: changed,
                message: "\(id): search for \(job.entity) answers from generation \(rolled.active) again (generation \(job.generation ?? 0) is kept current)")
        case .retryFailed:
            let letters = try await store.deadLetters(entity: job.entity).filter { $0.lsn >= (job.sweepBefore ?? .zero) }
            guard !letters.isEmpty else { return Outcome(job: job, message: "\(id) has no failed rows") }
            var retry = JobRecord(id: JobRecord.newID(), entity: job.entity, kind: .ids)
            retry.ids = letters.map(\.id)
            retry.estimatedTotal = letters.count
            try await store.saveJob(retry)
            return Outcome(job: job, queued: retry, message: "queued \(retry.id) to retry \(letters.count) failed rows of \(id)")
        }
    }
}
