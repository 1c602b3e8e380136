import Embedding
import ArgumentParser
import Capture
import Foundation
import Indexing
import Logging
import Postgres
import Server
import Sync

/// `tidemark backfill`: queue a backfill (all rows, or some ids) and follow its progress.
struct BackfillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backfill",
        abstract: "Re-index an entity (or some of its ids) while the agent keeps streaming; shows progress until done.",
        discussion: "The running agent (tidemark run) executes the job; this command queues it and follows it."
    )

    @OptionGroup var options: ConfigOptions

    @Argument(help: "Entity to backfill.")
    var entity: String

    @Option(name: .long, parsing: .upToNextOption, help: "Only these document ids (the key's text; composite keys as JSON arrays).")
    var ids: [String] = []

    @Flag(name: .long, help: "Build a new generation beside the live one and switch to it when done (search keeps answering; tidemark job ID rollback undoes it).")
    var rebuild = false

    @Flag(name: .long, help: "Print rows, estimated tokens and embedding calls; write nothing.")
    var dryRun = false

    @Flag(name: .long, help: "Queue the job and return at once.")
    var noWait = false

    func run() async throws {
        let configuration = options.load()
        let logger = options.makeLogger()
        options.requireEntity(entity, in: configuration)
        do {
            if dryRun {
                try await DryRun.report(entity, ids: ids, configuration: configuration, logger: logger)
                print("nothing was written")
                return
            }
            if rebuild && !ids.isEmpty { fail("--rebuild rebuilds every row; it does not take --ids") }
            // The running agent's API when it answers (it records the job exactly as below), else the store.
            let job: JobRecord
            let fetch: @Sendable (String) async throws -> JobRecord?
            if let client = await options.agentClient(configuration, logger: logger) {
                job = try await client.queue(entity: entity, ids: ids, rebuild: rebuild)
                fetch = { try await client.job($0) }
            } else {
                let store = try await Agent.openStore(configuration, logger: logger)
                job = try await JobOperator(store: store, entities: configuration.entities.map(\.name)).queue(entity: entity, ids: ids, rebuild: rebuild)
                fetch = { try await store.job($0) }
            }
            print("queued \(job.id) (\(ids.isEmpty ? "all rows" : "\(ids.count) ids") of \(entity)); the running agent executes it")
            if noWait { return }
            let final = try await JobProgress.follow(job.id, fetch: fetch)
            print("\(final.id) \(final.status.rawValue): \(final.processed) rows, \(final.failed) failed\(final.lastError.map { ", last error: \($0)" } ?? "")")
            if final.status != .completed { throw ExitCode(1) }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            fail("\(error)")
        }
    }
}

/// `tidemark jobs`: the backfill jobs, newest first.
struct JobsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "jobs", abstract: "List backfill jobs with their progress.")

    @OptionGroup var options: ConfigOptions

    @Option(name: .long, help: "Only this entity.")
    var entity: String?

    @Flag(name: .long, help: "Print JSON lines.")
    var json = false

    func run() async throws {
        let configuration = options.load()
        let logger = options.makeLogger()
        do {
            let store = try await Agent.openStore(configuration, logger: logger)
            let jobs = try await store.jobs(entity: entity)
            if json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys]
                for job in jobs { print(String(decoding: try encoder.encode(job), as: UTF8.self)) }
                return
            }
            if jobs.isEmpty { print("no jobs") }
            for job in jobs { print(JobProgress.summary(job)) }
        } catch {
            fail("\(error)")
        }
    }
}

/// `tidemark job ID [action]`: one job, or pause / resume / cancel / retry-failed.
struct JobCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "job", abstract: "Show a job, or pause, resume, cancel it, or retry its failed rows.")

    enum Action: String, ExpressibleByArgument, CaseIterable {
        case show, pause, resume, cancel, rollback
        case retryFailed = "retry-failed"

        /// The shared job action (`nil` for show).
        var operation: JobOperator.Action? { JobOperator.Action(rawValue: rawValue) }
    }

    @OptionGroup var options: ConfigOptions

    @Argument(help: "Job id (from tidemark jobs).")
    var id: String

    @Argument(help: "show, pause, resume, cancel, retry-failed, or rollback (a completed rebuild).")
    var action: Action = .show

    func run() async throws {
        let configuration = options.load()
        let logger = options.makeLogger()
        do {
            if let client = await options.agentClient(configuration, logger: logger) {
                if let operation = action.operation {
                    let result = try await client.perform(operation, on: id)
                    print(result.message)
                } else {
                    let encoder = JSONEncoder()
                    encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
                    print(String(decoding: try encoder.encode(try await client.job(id)), as: UTF8.self))
                }
                return
            }
            let store = try await Agent.openStore(configuration, logger: logger)
            let jobs = JobOperator(store: store, entities: configuration.entities.map(\.name))
            if let operation = action.operation {
                print(try await jobs.perform(operation, on: id).message)
            } else {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
                print(String(decoding: try encoder.encode(try await jobs.job(id)), as: UTF8.self))
            }
        } catch {
            fail("\(error)")
        }
    }
}

/// Progress display for jobs.
enum JobProgress {
    static func summary(_ job: JobRecord) -> String {
        let percent = job.estimatedTotal > 0 ? min(100, job.processed * 100 / job.estimatedTotal) : (job.status == .completed ? 100 : 0)
        var text = "\(job.id)  \(job.entity)  \(job.kind.rawValue)  \(job.status.rawValue)  \(percent)%  \(job.processed)/\(job.estimatedTotal) rows"
        if job.rate > 0 { text += String(format: "  %.0f rows/s", job.rate) }
        if let eta = job.eta { text += "  ETA \(duration(eta))" }
        if job.failed > 0 { text += "  \(job.failed) failed" }
        if let error = job.lastError { text += "  last error: \(error)" }
        return text
    }

    static func duration(_ seconds: Double) -> String {
        let total = Int(seconds.rounded())
        return total >= 3600 ? String(format: "%d:%02d:%02d", total / 3600, total / 60 % 60, total % 60) : String(format: "%d:%02d", total / 60, total % 60)
    }

    static func bar(_ job: JobRecord, width: Int = 30) -> String {
        let fraction = job.estimatedTotal > 0 ? min(1, Double(job.processed) / Double(job.estimatedTotal)) : 0
        let filled = Int(fraction * Double(width))
        var line = "\(job.entity) [" + String(repeating: "█", count: filled) + String(repeating: "░", count: width - filled) + "]"
        line += String(format: " %3.0f%%  %d/%d rows", fraction * 100, job.processed, job.estimatedTotal)
        if job.rate > 0 { line += String(format: "  %.0f rows/s", job.rate) }
        if let eta = job.eta { line += "  ETA \(duration(eta))" }
        if job.status == .paused { line += "  (paused)" }
        return line
    }

    /// Polls the job until it ends; on a terminal draws a progress bar, otherwise prints a line now and then.
    static func follow(_ id: String, fetch: (String) async throws -> JobRecord?) async throws -> JobRecord {
        let terminal = isatty(STDERR_FILENO) == 1
        var lastPrinted = ContinuousClock.now - .seconds(60)
        while true {
            guard let job = try await fetch(id) else { throw ValidationError("job \(id) disappeared") }
            if terminal {
                FileHandle.standardError.write(Data(("\r\u{1B}[2K" + bar(job)).utf8))
            } else if ContinuousClock.now - lastPrinted >= .seconds(5) {
                FileHandle.standardError.write(Data((summary(job) + "\n").utf8))
                lastPrinted = .now
            }
            if !job.status.isActive {
                if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
                return job
            }
            try await Task.sleep(for: .milliseconds(300))
        }
    }
}

/// What a backfill would cost, without writing anything.
enum DryRun {
    struct Estimate {
        var rows: Int
        /// Texts to embed: rows, or their chunks when content is longer than chunking.max_tokens.
        var texts: Int
        var tokens: Int
        var sampled: Int
        var calls: Int
        var batchSize: Int
    }

    /// Renders a sample of rows (at most 1000) with the entity's templates, counts their tokens with
    /// the embedder's `tokenCount` and their chunks, and scales both to the rows.
    static func estimate(_ entity: EntityMapping, ids: [String], embedder: any Embedder, chunking: AgentConfiguration.Chunking, on connection: PostgresConnection) async throws -> Estimate {
        let columns = entity.selectColumns.map(PostgresConnection.quoteIdentifier).joined(separator: ", ")
        let rows: Int
        if ids.isEmpty {
            let counted = try await connection.query("SELECT count(*)::text FROM \(entity.table.quoted)").rows.first?.first ?? nil
            rows = Int(counted ?? "0") ?? 0
        } else {
            rows = ids.count
        }
        let sample = try await connection.query("SELECT \(columns) FROM \(entity.table.quoted) LIMIT 1000")
        var sampleTexts = 0
        var sampleTokens = 0
        for row in sample.rows {
            var values: [String: String?] = [:]
            for (index, column) in entity.selectColumns.enumerated() { values[column] = row[index] }
            guard let document = try? entity.document(id: "sample", values: values, lsn: .zero) else { continue }
            let chunks = EmbeddingEstimate.chunks(
                ofTokens: embedder.tokenCount(document.content), maxTokens: chunking.maxTokens, overlapTokens: chunking.overlapTokens)
            sampleTexts += chunks.count
            sampleTokens += chunks.tokens
        }
        let scale = sample.rows.isEmpty ? 0 : Double(rows) / Double(sample.rows.count)
        let texts = Int((Double(sampleTexts) * scale).rounded(.up))
        let batch = max(1, embedder.maxBatchSize)
        return Estimate(
            rows: rows, texts: texts, tokens: Int((Double(sampleTokens) * scale).rounded(.up)), sampled: sample.rows.count,
            calls: (texts + batch - 1) / batch, batchSize: batch)
    }

    /// Prints rows, texts, tokens, and for a provider the requests, the time they take at the
    /// configured budgets and concurrency (`assumedLatency` a request), and the cost.
    static func report(_ entityName: String, ids: [String], configuration: AgentConfiguration, assumedLatency: Duration = .milliseconds(500), logger: Logger) async throws {
        let connection = try await PostgresConnection.connect(configuration.source.url, logger: logger)
        let entities: [EntityMapping]
        do {
            entities = try await Agent.resolveEntities(configuration, on: connection, logger: logger)
        } catch {
            await connection.close()
            throw error
        }
        guard let mapping = entities.first(where: { $0.name == entityName }) else {
            await connection.close()
            fail("unknown entity '\(entityName)'")
        }
        let embedder = try Agent.makeEmbedder(configuration, logger: logger)
        let estimate: Estimate
        do {
            estimate = try await DryRun.estimate(mapping, ids: ids, embedder: embedder, chunking: configuration.chunking, on: connection)
        } catch {
            await embedder.shutdown()
            await connection.close()
            throw error
        }
        await embedder.shutdown()
        await connection.close()
        let chunking = configuration.chunking
        print("entity:               \(entityName) ← \(mapping.table)")
        print("rows:                 \(estimate.rows)\(ids.isEmpty ? "" : " of \(ids.count) ids")")
        print("texts:                \(estimate.texts)\(estimate.texts > estimate.rows ? " (content over \(chunking.maxTokens) tokens is cut into chunks overlapping by \(chunking.overlapTokens))" : "")")
        print("estimated tokens:     \(estimate.tokens) (the embedder's estimate, from a sample of \(estimate.sampled) rows)")
        guard let provider = configuration.embedder.openai, configuration.embedder.kind == .openai else {
            print("embedder:             \(configuration.embedder.kind.rawValue) \(embedder.model) runs locally: no provider requests, no cost")
            print("embedding calls:      at most \(estimate.calls) of \(estimate.batchSize) texts; unchanged documents cost none")
            return
        }
        let cost = EmbeddingEstimate(rows: estimate.rows, texts: estimate.texts, tokens: estimate.tokens, configuration: provider, assumedLatency: assumedLatency)
        func perMinute(_ value: Int?) -> String { value.map { "\($0)/min" } ?? "unlimited" }
        print("embedder:             openai-compatible \(provider.model)")
        print("requests:             \(cost.requests) of up to \(cost.inputsPerRequest) texts (max_inputs \(provider.maxInputs), max_request_tokens \(provider.maxRequestTokens))")
        print("time at the budgets:  \(JobProgress.duration(cost.duration.secondsValue)) (bound by \(cost.limit.rawValue); requests_per_minute \(perMinute(provider.requestsPerMinute)), tokens_per_minute \(perMinute(provider.tokensPerMinute)), concurrency \(provider.concurrency) at an assumed \(Int(assumedLatency.secondsValue * 1_000)) ms a request; retries not counted)")
        if let dollars = cost.cost {
            print("cost:                 $\(String(format: dollars < 1 ? "%.4f" : "%.2f", dollars)) at $\(provider.pricePerMillionTokens ?? 0) per million tokens")
        } else {
            print("cost:                 unknown: set embedder.price_per_million_tokens (e.g. 0.02 for text-embedding-3-small)")
        }
        print("unchanged documents cost none: a document is embedded again only when its content or the model changes")
    }
}

extension Duration {
    /// The duration in seconds, as a floating-point number.
    var secondsValue: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}
