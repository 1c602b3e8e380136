import ArgumentParser
import Foundation
import Indexing
import Sync

/// `tidemark validate [ENTITY]`: compare the index with the source and report drift.
struct ValidateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Compare the index with the source: ids missing, orphaned, stale or dead-lettered.",
        discussion: """
            With an agent streaming (its replication slot is active), the agent runs the validation and \
            it waits for the index to pass every source position it compares, so changes in flight are \
            never drift. Without one, the validation runs here and compares the index as it stands \
            (rows changed since the agent last ran count as drift; the output says so). \
            Exit status: 0 in sync, 1 drift found or failure, 3 unsettled (changes kept arriving; run again).
            """
    )

    @OptionGroup var options: ConfigOptions

    @Argument(help: "Entity to validate (default: every entity).")
    var entity: String?

    @Flag(name: .long, help: "Print each result as a JSON line (a validation record).")
    var json = false

    func run() async throws {
        let configuration = options.load()
        let logger = options.makeLogger()
        if let entity { options.requireEntity(entity, in: configuration) }
        let entities = entity.map { [$0] } ?? configuration.entities.map(\.name)
        do {
            let store = try await Agent.openStore(configuration, logger: logger)
            var records: [ValidationRecord] = []
            if try await ValidationRequests.agentIsStreaming(configuration, logger: logger) {
                let queued = try await entities.asyncMap { try await ValidationRequests.submit(entity: $0, kind: .validate, trigger: "cli", store: store) }
                for record in queued { records.append(try await ValidationRequests.wait(for: record.id, store: store)) }
            } else {
                let validator = try await Validator.make(configuration, store: store, waitForIndex: false, logger: logger)
                for name in entities {
                    var record = ValidationRecord(entity: name, kind: .validate, trigger: "cli")
                    record.startedAt = Date().timeIntervalSince1970
                    do {
                        record.result = try await validator.validate(entity: name)
                        record.status = .completed
                    } catch {
                        record.status = .failed
                        record.error = "\(error)"
                    }
                    record.finishedAt = Date().timeIntervalSince1970
                    try await store.saveValidation(record)
                    records.append(record)
                }
            }
            for record in records { ValidationOutput.print(record, json: json) }
            throw ExitCode(ValidationOutput.exitStatus(records))
        } catch let exit as ExitCode {
            throw exit
        } catch {
            fail("\(error)")
        }
    }
}

/// `tidemark repair ENTITY`: validate, feed the drift back through the backfill path, validate again.
struct RepairCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repair",
        abstract: "Repair an entity's drift through the running agent, then validate it again.",
        discussion: """
            The running agent validates the entity, queues an ids job with every missing, stale, orphaned \
            and dead-lettered id (rows read again from the source and written through the pipeline; ids \
            no longer in the source are deleted), waits for it, and validates again. Nothing writes the \
            index around the pipeline, so an agent must be running. Exit status: 0 in sync afterwards, \
            1 otherwise.
            """
    )

    @OptionGroup var options: ConfigOptions

    @Argument(help: "Entity to repair.")
    var entity: String

    @Flag(name: .long, help: "Print the result as a JSON line (a validation record).")
    var json = false

    func run() async throws {
        let configuration = options.load()
        let logger = options.makeLogger()
        options.requireEntity(entity, in: configuration)
        do {
            guard try await ValidationRequests.agentIsStreaming(configuration, logger: logger) else {
                fail("no agent is streaming from slot \(configuration.source.slot): a repair writes through the agent's pipeline; start tidemark run first")
            }
            let store = try await Agent.openStore(configuration, logger: logger)
            let queued = try await ValidationRequests.submit(entity: entity, kind: .repair, trigger: "cli", store: store)
            let record = try await ValidationRequests.wait(for: queued.id, store: store)
            ValidationOutput.print(record, json: json)
            throw ExitCode(record.status == .completed && record.result?.isInSync == true ? 0 : 1)
        } catch let exit as ExitCode {
            throw exit
        } catch {
            fail("\(error)")
        }
    }
}

/// `tidemark validations`: the history of validations and repairs.
struct ValidationsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "validations", abstract: "List validations and repairs, newest first.")

    @OptionGroup var options: ConfigOptions

    @Option(name: .long, help: "Only this entity.")
    var entity: String?

    @Option(name: .long, help: "At most this many.")
    var limit = 50

    @Flag(name: .long, help: "Print JSON lines.")
    var json = false

    func run() async throws {
        let configuration = options.load()
        let logger = options.makeLogger()
        do {
            let store = try await Agent.openStore(configuration, logger: logger)
            let records = try await store.validations(entity: entity, limit: limit)
            if records.isEmpty && !json { print("no validations") }
            for record in records { ValidationOutput.print(record, json: json, brief: true) }
        } catch {
            fail("\(error)")
        }
    }
}

/// How validation records are shown.
enum ValidationOutput {
    static func print(_ record: ValidationRecord, json: Bool, brief: Bool = false) {
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            if let data = try? encoder.encode(record) { Swift.print(String(decoding: data, as: UTF8.self)) }
            return
        }
        let when = Date(timeIntervalSince1970: record.startedAt ?? record.createdAt)
        var line = "\(record.id)  \(record.entity)  \(record.kind.rawValue)  \(record.status.rawValue)  \(when)  (\(record.trigger))"
        if let result = record.result {
            line += "  \(result.status.rawValue)"
            line += String(format: "  %.2f s", result.duration)
            line += "  missing \(result.missing.count), orphaned \(result.orphaned.count), stale \(result.stale.count), dead letters \(result.deadLettered.count)"
            if result.unsettled.count > 0 { line += ", unsettled \(result.unsettled.count)" }
        }
        if let error = record.error { line += "  \(error)" }
        Swift.print(line)
        guard !brief else { return }
        if let repair = record.repair {
            Swift.print("  found: missing \(repair.missing), stale \(repair.stale), orphaned \(repair.orphaned), dead letters \(repair.deadLettered)")
            if let job = repair.jobID {
                Swift.print("  repaired through job \(job) (\(repair.jobStatus ?? "?")): \(repair.rowsRead) ids read again from the source and written or deleted")
            } else {
                Swift.print("  nothing to repair")
            }
        }
        if let result = record.result {
            for (name, finding) in [("missing", result.missing), ("orphaned", result.orphaned), ("stale", result.stale), ("dead letters", result.deadLettered), ("unsettled", result.unsettled)] where finding.count > 0 {
                Swift.print("  \(name): \(finding.sample.joined(separator: ", "))\(finding.count > finding.sample.count ? ", … (\(finding.count - finding.sample.count) more)" : "")")
            }
            Swift.print("  \(result.sourceRows) rows, \(result.documents) documents, \(result.ranges) ranges (\(result.differingRanges) differed); read source \(result.source.rows) rows / \(result.source.bytes) bytes in \(result.source.queries) statements, index \(result.index.rows) documents / \(result.index.bytes) bytes")
            if let note = result.note { Swift.print("  note: \(note)") }
        }
    }

    /// 0 when every record completed in sync, 3 when none drifted but some were unsettled, 1 otherwise.
    static func exitStatus(_ records: [ValidationRecord]) -> Int32 {
        if records.allSatisfy({ $0.status == .completed && $0.result?.status == .inSync }) { return 0 }
        if records.allSatisfy({ $0.status == .completed && $0.result?.status != .drifted }) { return 3 }
        return 1
    }
}

extension Array {
    /// `map` with an asynchronous transform, in order.
    func asyncMap<T>(_ transform: (Element) async throws -> T) async rethrows -> [T] {
        var results: [T] = []
        results.reserveCapacity(count)
        for element in self { results.append(try await transform(element)) }
        return results
    }
}
