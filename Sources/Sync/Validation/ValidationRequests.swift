import Foundation
import Indexing
import Logging
import Postgres

/// How a process reaches the running agent's validator: a request is a queued
/// ``Indexing/ValidationRecord`` in the index store, which the agent's ``ValidationRunner`` picks
/// up within half a second, runs (one at a time) and completes in place. `tidemark validate`,
/// `tidemark repair` and the HTTP API use it; ``Validator`` itself can also run in any process that
/// has the configuration (validation only reads).
public enum ValidationRequests {
    /// Queues a validation or repair of `entity`; returns the queued record.
    public static func submit(entity: String, kind: ValidationRecord.Kind, trigger: String, store: any IndexStore) async throws -> ValidationRecord {
        let record = ValidationRecord(entity: entity, kind: kind, trigger: trigger)
        try await store.saveValidation(record)
        return record
    }

    /// Waits until the record is finished (completed, failed or skipped) and returns it.
    ///
    /// - Throws: ``SyncError`` `validation` when no agent picked the request up within
    ///   `pickupTimeout` (the request is then recorded as failed, so no later agent runs it by surprise).
    public static func wait(for id: String, store: any IndexStore, pickupTimeout: Duration = .seconds(30)) async throws -> ValidationRecord {
        let deadline = ContinuousClock.now + pickupTimeout
        while true {
            guard var record = try await store.validation(id) else {
                throw SyncError(.validation, "validation \(id) is not in the index")
            }
            if record.status.isFinished { return record }
            if record.status == .queued && ContinuousClock.now >= deadline {
                record.status = .failed
                record.error = "no agent picked the request up within \(pickupTimeout)"
                record.finishedAt = Date().timeIntervalSince1970
                try await store.saveValidation(record)
                throw SyncError(
                    .validation,
                    "no agent picked up validation \(id) within \(pickupTimeout): is tidemark run running with this configuration and index?")
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// Whether an agent is streaming from the configured replication slot (the slot is active on the
    /// source): then requests go to it, and the index moves while a validation runs.
    public static func agentIsStreaming(_ configuration: AgentConfiguration, logger: Logger) async throws -> Bool {
        let connection = try await PostgresConnection.connect(configuration.source.url, applicationName: "tidemark-validation", logger: logger)
        do {
            let active = try await connection.query(
                "SELECT active::text FROM pg_replication_slots WHERE slot_name = $1", [configuration.source.slot]).rows.first?.first ?? nil
            await connection.close()
            return active == "true"
        } catch {
            await connection.close()
            throw error
        }
    }
}
