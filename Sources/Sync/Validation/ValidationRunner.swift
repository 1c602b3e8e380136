import Foundation
import Indexing
import Logging

/// Runs validations and repairs inside the agent, one at a time: the requests queued in the index
/// store (by `tidemark validate`, `tidemark repair`, the HTTP API; see ``ValidationRequests``) and
/// those the schedules start (`validation.schedule`, and `validation.repair_schedule` with
/// `validation.auto_repair`), on the agent's clock in `validation.time_zone`.
///
/// A run of an entity is skipped — recorded as ``Indexing/ValidationRecord/Status/skipped`` and
/// logged — while a backfill or rebuild of that entity is queued, running or paused: its rows are
/// still arriving, so every one not loaded yet would count as missing. A failing run is recorded as
/// failed and never stops the agent. Runs of the agent's task group; returns only when cancelled.
struct ValidationRunner: Sendable {
    struct Configuration: Sendable {
        var schedule: CronExpression?
        var repairSchedule: CronExpression?
        var autoRepair = false
        var timeZone: TimeZone = .current
        /// How often queued requests are looked for. Default 500 ms.
        var pollInterval: Duration = .milliseconds(500)
    }

    let configuration: Configuration
    let validator: Validator
    let logger: Logger
    /// The agent's clock.
    var now: @Sendable () -> Date = { Date() }

    init(configuration: Configuration, validator: Validator, logger: Logger) {
        self.configuration = configuration
        self.validator = validator
        self.logger = logger
    }

    /// The runner of an agent: its entities, its index, its `validation` settings.
    init(agent: AgentConfiguration, entities: [EntityMapping], store: any IndexStore, logger: Logger) {
        var validation = Validator.Configuration()
        validation.segmentRows = agent.validation.segmentRows
        validation.checkContent = agent.validation.checkContent
        var configuration = Configuration()
        configuration.schedule = agent.validation.schedule
        configuration.repairSchedule = agent.validation.repairSchedule
        configuration.autoRepair = agent.validation.autoRepair
        configuration.timeZone = agent.validation.timeZone
        self.init(
            configuration: configuration,
            validator: Validator(configuration: validation, entities: entities, store: store, sourceURL: agent.source.url, logger: logger),
            logger: logger)
    }

    private var store: any IndexStore { validator.store }

    func run() async throws {
        do {
            try await markInterrupted()
        } catch {
            logger.warning("cannot read the validation history", metadata: ["error": "\(error)"])
        }
        let zone = configuration.timeZone
        var nextValidation = configuration.schedule?.next(after: now(), in: zone)
        var nextRepair = configuration.autoRepair ? configuration.repairSchedule?.next(after: now(), in: zone) : nil
        logger.info(
            "validation schedule",
            metadata: [
                "validation.next": "\(nextValidation.map { "\($0)" } ?? "never")", "repair.next": "\(nextRepair.map { "\($0)" } ?? "never")",
                "validation.time_zone": "\(zone.identifier)",
            ])
        while !Task.isCancelled {
            let current = now()
            do {
                if let due = nextValidation, current >= due {
                    try await queueAll(.validate)
                    nextValidation = configuration.schedule?.next(after: current, in: zone)
                }
                if let due = nextRepair, current >= due {
                    try await queueAll(.repair)
                    nextRepair = configuration.repairSchedule?.next(after: current, in: zone)
                }
                for record in try await store.queuedValidations() {
                    if Task.isCancelled { return }
                    await process(record)
                }
            } catch where Task.isCancelled {
                return
            } catch {
                logger.warning("cannot read queued validations; will retry", metadata: ["error": "\(error)"])
            }
            do {
                try await Task.sleep(for: configuration.pollInterval)
            } catch {
                return
            }
        }
    }

    /// Queues a scheduled run for every entity.
    private func queueAll(_ kind: ValidationRecord.Kind) async throws {
        for entity in validator.entityNames {
            try await store.saveValidation(ValidationRecord(entity: entity, kind: kind, trigger: "schedule"))
        }
        logger.info("scheduled \(kind.rawValue) queued", metadata: ["entities": "\(validator.entityNames)"])
    }

    /// Records left running by an agent that stopped are failed: nothing will finish them.
    private func markInterrupted() async throws {
        for var record in try await store.validations(entity: nil, limit: 1_000) where record.status == .running {
            record.status = .failed
            record.error = "interrupted: the agent stopped during the run"
            record.finishedAt = now().timeIntervalSince1970
            try await store.saveValidation(record)
        }
    }

    /// Runs one record and records the outcome.
    func process(_ request: ValidationRecord) async {
        var record = request
        do {
            if let job = try await store.activeJobs().first(where: { $0.entity == record.entity && $0.kind != .ids }) {
                record.status = .skipped
                record.error = "a \(job.kind.rawValue) of \(record.entity) is \(job.status.rawValue) (\(job.id)); its rows are still arriving, so the \(record.kind.rawValue) was skipped"
                record.finishedAt = now().timeIntervalSince1970
                try await store.saveValidation(record)
                logger.warning(
                    "\(record.kind.rawValue) skipped while a \(job.kind.rawValue) of the entity runs",
                    metadata: ["entity": "\(record.entity)", "validation.id": "\(record.id)", "job.id": "\(job.id)", "trigger": "\(record.trigger)"])
                return
            }
            record.status = .running
            record.startedAt = now().timeIntervalSince1970
            try await store.saveValidation(record)
            logger.info("\(record.kind.rawValue) started", metadata: ["entity": "\(record.entity)", "validation.id": "\(record.id)", "trigger": "\(record.trigger)"])
            switch record.kind {
            case .validate:
                record.result = try await validator.validate(entity: record.entity)
            case .repair:
                let outcome = try await DriftRepair(validator: validator, logger: logger).repair(entity: record.entity)
                record.repair = outcome.repair
                record.result = outcome.after
            }
            record.status = .completed
        } catch {
            record.status = .failed
            record.error = Task.isCancelled ? "interrupted: the agent stopped during the run" : "\(error)"
            if !Task.isCancelled {
                logger.error("\(record.kind.rawValue) failed", metadata: ["entity": "\(record.entity)", "validation.id": "\(record.id)", "error": "\(error)"])
            }
        }
        record.finishedAt = now().timeIntervalSince1970
        do {
            try await store.saveValidation(record)
        } catch {
            logger.warning("cannot record the validation outcome", metadata: ["validation.id": "\(record.id)", "error": "\(error)"])
        }
    }
}
