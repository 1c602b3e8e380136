import Embedding
import Capture
import Foundation
import Postgres
import Yams

/// Reads `tidemark.yml` and `TIDEMARK_…` environment variables into an ``AgentConfiguration``.
///
/// Every key may be overridden by an environment variable named after its path:
/// `source.url` → `TIDEMARK_SOURCE_URL`, `entities.product.content` →
/// `TIDEMARK_ENTITIES_PRODUCT_CONTENT` (lists comma-separated). Unknown keys, wrong types and
/// missing required keys stop start-up with a message that names the key path and the fix.
public struct ConfigurationLoader: Sendable {
    public var environment: [String: String]

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        self.environment = environment
    }

    static let sections: [String: Set<String>] = [
        "source": ["url", "slot", "publication", "heartbeat_interval", "partition_check_interval"],
        "index": ["kind", "path", "url", "schema"],
        "embedder": [
            "kind", "weights", "tokenizer", "tensor", "url", "model", "dimensions", "send_dimensions", "api_key_env",
            "api_key_file", "api_key_header", "timeout", "max_inputs", "max_input_tokens", "max_request_tokens", "requests_per_minute",
            "tokens_per_minute", "concurrency", "max_attempts", "initial_backoff", "max_backoff", "price_per_million_tokens",
        ],
        "chunking": ["max_tokens", "overlap_tokens"],
        "pipeline": ["batch_size", "batch_bytes", "batch_delay", "embedding_concurrency"],
        "backfill": ["max_concurrent", "chunk_duration", "max_chunk_bytes"],
        "api": ["enabled", "listen", "token_env", "token_file", "ready_max_lag", "ready_max_lag_bytes"],
        "validation": ["schedule", "repair_schedule", "auto_repair", "time_zone", "segment_rows", "check_content"],
    ]
    static let entityKeys: Set<String> = ["table", "content", "metadata", "key"]

    /// Loads the file at `path` (if it exists; environment variables alone may configure everything).
    public func load(path: String?) throws(SyncError) -> AgentConfiguration {
        var text = ""
        if let path {
            do {
                text = try String(contentsOfFile: path, encoding: .utf8)
            } catch {
                throw SyncError(.configuration, "cannot read the configuration file \(path): \(error.localizedDescription)")
            }
        }
        return try parse(text, origin: path ?? "environment")
    }

    /// Parses YAML text, then applies environment overrides and validates.
    public func parse(_ text: String, origin: String = "configuration") throws(SyncError) -> AgentConfiguration {
        var root: [String: Any] = [:]
        if !text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            let loaded: Any?
            do {
                loaded = try Yams.load(yaml: text)
            } catch {
                // The parser quotes the offending line, which may hold the source URL.
                throw SyncError(.configuration, "\(origin) is not valid YAML: \(ConnectionString.redacted("\(error)"))")
            }
            guard let mapping = loaded as? [String: Any] else {
                throw SyncError(.configuration, "\(origin) must be a mapping with keys source, index, embedder, chunking, pipeline, backfill, api, entities")
            }
            root = mapping
        }
        try checkKeys(root)
        applyEnvironment(to: &root)
        return try build(root)
    }

    // MARK: - Keys

    private func checkKeys(_ root: [String: Any]) throws(SyncError) {
        if let embedder = root["embedder"] as? [String: Any], embedder["api_key"] != nil {
            throw SyncError(.configuration, "embedder.api_key: an API key never goes into the configuration file; name the environment variable that holds it (api_key_env: OPENAI_API_KEY) or a file (api_key_file: /run/secrets/openai)")
        }
        let known = Set(Self.sections.keys).union(["entities"])
        for key in root.keys.sorted() where !known.contains(key) {
            throw SyncError(.configuration, "unknown key '\(key)'\(suggestion(key, known)); top-level keys are \(known.sorted().joined(separator: ", "))")
        }
        for (section, keys) in Self.sections {
            guard let value = root[section] else { continue }
            guard let mapping = value as? [String: Any] else {
                throw SyncError(.configuration, "\(section) must be a mapping (keys: \(keys.sorted().joined(separator: ", ")))")
            }
            for key in mapping.keys.sorted() where !keys.contains(key) {
                throw SyncError(.configuration, "unknown key '\(section).\(key)'\(suggestion(key, keys)); valid keys are \(keys.sorted().joined(separator: ", "))")
            }
        }
        if let entities = root["entities"] {
            guard let mapping = entities as? [String: Any] else {
                throw SyncError(.configuration, "entities must be a mapping from entity name to {table, content, metadata, key}")
            }
            for (name, value) in mapping {
                guard let entity = value as? [String: Any] else {
                    throw SyncError(.configuration, "entities.\(name) must be a mapping with keys table, content, metadata, key")
                }
                for key in entity.keys.sorted() where !Self.entityKeys.contains(key) {
                    throw SyncError(.configuration, "unknown key 'entities.\(name).\(key)'\(suggestion(key, Self.entityKeys)); valid keys are \(Self.entityKeys.sorted().joined(separator: ", "))")
                }
            }
        }
    }

    private func suggestion(_ key: String, _ known: Set<String>) -> String {
        // Sorted, so that ties resolve the same way every time.
        Suggestion.closest(to: key, in: known.sorted(), maximum: 2).map { " (did you mean '\($0)'?)" } ?? ""
    }

    // MARK: - Environment

    /// The environment variable that overrides `path` (e.g. `["source", "url"]`).
    public static func variableName(_ path: [String]) -> String {
        "TIDEMARK_" + path.map { $0.uppercased().replacingOccurrences(of: "-", with: "_") }.joined(separator: "_")
    }

    private func applyEnvironment(to root: inout [String: Any]) {
        for (section, keys) in Self.sections {
            for key in keys {
                if let value = environment[Self.variableName([section, key])] {
                    var mapping = root[section] as? [String: Any] ?? [:]
                    mapping[key] = value
                    root[section] = mapping
                }
            }
        }
        var entities = root["entities"] as? [String: Any] ?? [:]
        for (name, value) in entities {
            guard var entity = value as? [String: Any] else { continue }
            for key in Self.entityKeys {
                if let value = environment[Self.variableName(["entities", name, key])] {
                    entity[key] = (key == "metadata" || key == "key")
                        ? value.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } as Any
                        : value
                }
            }
            entities[name] = entity
        }
        root["entities"] = entities
    }

    // MARK: - Building

    private func build(_ root: [String: Any]) throws(SyncError) -> AgentConfiguration {
        let sourceMap = root["source"] as? [String: Any] ?? [:]
        guard let url = try string(sourceMap, "source.url", "url"), !url.isEmpty else {
            throw SyncError(.configuration, "source.url is missing: set it to the source database URL (postgres://user@host:5432/db) in the file or in TIDEMARK_SOURCE_URL")
        }
        var source = AgentConfiguration.Source(url: url)
        if let slot = try string(sourceMap, "source.slot", "slot") { source.slot = try identifier(slot, "source.slot") }
        if let publication = try string(sourceMap, "source.publication", "publication") {
            source.publication = try identifier(publication, "source.publication")
        }
        if let interval = try duration(sourceMap, "source.heartbeat_interval", "heartbeat_interval") { source.heartbeatInterval = interval }
        if let interval = try duration(sourceMap, "source.partition_check_interval", "partition_check_interval") {
            source.partitionCheckInterval = interval
        }

        let entitiesMap = root["entities"] as? [String: Any] ?? [:]
        guard !entitiesMap.isEmpty else {
            throw SyncError(.configuration, "entities is empty: add at least one, e.g. entities: { product: { table: public.products, content: \"{{name}}\" } }")
        }
        var entities: [AgentConfiguration.Entity] = []
        for name in entitiesMap.keys.sorted() {
            let map = entitiesMap[name] as? [String: Any] ?? [:]
            let path = "entities.\(name)"
            guard name.range(of: "^[A-Za-z_][A-Za-z0-9_-]*$", options: .regularExpression) != nil else {
                throw SyncError(.configuration, "\(path): entity names use letters, digits, _ and - (got '\(name)')")
            }
            guard let tableText = try string(map, "\(path).table", "table") else {
                throw SyncError(.configuration, "\(path).table is missing: name the table, e.g. public.products")
            }
            guard let table = TableName(parsing: tableText) else {
                throw SyncError(.configuration, "\(path).table: '\(tableText)' is not a table name; use schema.table")
            }
            guard let content = try string(map, "\(path).content", "content"), !content.isEmpty else {
                throw SyncError(.configuration, "\(path).content is missing: give a template such as \"{{name}}\\n{{description}}\"")
            }
            var entity = AgentConfiguration.Entity(name: name, table: table, content: content)
            entity.metadata = try list(map, "\(path).metadata", "metadata") ?? []
            entity.key = try list(map, "\(path).key", "key")
            entities.append(entity)
        }
        var configuration = AgentConfiguration(source: source, entities: entities)

        let indexMap = root["index"] as? [String: Any] ?? [:]
        let kind = try string(indexMap, "index.kind", "kind") ?? "sqlite"
        switch kind {
        case "sqlite":
            configuration.index = .sqlite(path: try string(indexMap, "index.path", "path") ?? "tidemark.db")
        case "pgvector":
            let indexURL = try string(indexMap, "index.url", "url") ?? url
            let schema = try identifier(try string(indexMap, "index.schema", "schema") ?? "tidemark", "index.schema")
            configuration.index = .pgvector(url: indexURL, schema: schema)
        default:
            throw SyncError(.configuration, "index.kind: '\(kind)' is not supported; use sqlite or pgvector")
        }

        configuration.embedder = try embedder(root["embedder"] as? [String: Any] ?? [:])

        let chunkingMap = root["chunking"] as? [String: Any] ?? [:]
        if let tokens = try integer(chunkingMap, "chunking.max_tokens", "max_tokens") {
            guard tokens >= 16 else { throw SyncError(.configuration, "chunking.max_tokens must be at least 16 (got \(tokens))") }
            configuration.chunking.maxTokens = tokens
        }
        if let overlap = try integer(chunkingMap, "chunking.overlap_tokens", "overlap_tokens") {
            configuration.chunking.overlapTokens = overlap
        }
        guard configuration.chunking.overlapTokens >= 0, configuration.chunking.overlapTokens < configuration.chunking.maxTokens / 2 else {
            throw SyncError(.configuration, "chunking.overlap_tokens must be at least 0 and less than half of chunking.max_tokens (\(configuration.chunking.maxTokens))")
        }

        let pipelineMap = root["pipeline"] as? [String: Any] ?? [:]
        if let size = try integer(pipelineMap, "pipeline.batch_size", "batch_size") {
            guard size > 0 else { throw SyncError(.configuration, "pipeline.batch_size must be positive") }
            configuration.pipeline.batchSize = size
        }
        if let bytes = try integer(pipelineMap, "pipeline.batch_bytes", "batch_bytes") {
            guard bytes > 0 else { throw SyncError(.configuration, "pipeline.batch_bytes must be positive") }
            configuration.pipeline.batchBytes = bytes
        }
        if let delay = try duration(pipelineMap, "pipeline.batch_delay", "batch_delay") { configuration.pipeline.batchDelay = delay }
        if let concurrency = try positive(pipelineMap, "pipeline.embedding_concurrency", "embedding_concurrency") {
            configuration.pipeline.embeddingConcurrency = concurrency
        }

        let backfillMap = root["backfill"] as? [String: Any] ?? [:]
        if let concurrent = try integer(backfillMap, "backfill.max_concurrent", "max_concurrent") {
            guard concurrent > 0 else { throw SyncError(.configuration, "backfill.max_concurrent must be positive") }
            configuration.backfill.maxConcurrent = concurrent
        }
        if let chunk = try duration(backfillMap, "backfill.chunk_duration", "chunk_duration") { configuration.backfill.chunkDuration = chunk }
        if let bytes = try integer(backfillMap, "backfill.max_chunk_bytes", "max_chunk_bytes") {
            guard bytes > 0 else { throw SyncError(.configuration, "backfill.max_chunk_bytes must be positive") }
            configuration.backfill.maxChunkBytes = bytes
        }
        configuration.api = try api(root["api"] as? [String: Any] ?? [:])
        configuration.validation = try validation(root["validation"] as? [String: Any] ?? [:])
        return configuration
    }

    private func api(_ map: [String: Any]) throws(SyncError) -> AgentConfiguration.API {
        var api = AgentConfiguration.API()
        if let enabled = try boolean(map, "api.enabled", "enabled") { api.enabled = enabled }
        if let listen = try string(map, "api.listen", "listen") {
            guard let parsed = AgentConfiguration.API.parseListen(listen) else {
                throw SyncError(.configuration, "api.listen: '\(listen)' is not host:port; use e.g. 127.0.0.1:7601, [::1]:7601 or 0.0.0.0:7601")
            }
            (api.host, api.port) = parsed
        }
        if let lag = try duration(map, "api.ready_max_lag", "ready_max_lag") { api.readyMaxLag = lag }
        if let bytes = try integer(map, "api.ready_max_lag_bytes", "ready_max_lag_bytes") {
            guard bytes > 0 else { throw SyncError(.configuration, "api.ready_max_lag_bytes must be positive") }
            api.readyMaxLagBytes = Int64(bytes)
        }
        if let file = try string(map, "api.token_file", "token_file") {
            let text: String
            do {
                text = try String(contentsOfFile: file, encoding: .utf8)
            } catch {
                throw SyncError(.configuration, "api.token_file: cannot read \(file): \(error.localizedDescription)")
            }
            api.token = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard api.token?.isEmpty == false else { throw SyncError(.configuration, "api.token_file: \(file) is empty") }
        } else if let variable = try string(map, "api.token_env", "token_env") {
            guard let token = environment[variable]?.trimmingCharacters(in: .whitespacesAndNewlines), !token.isEmpty else {
                throw SyncError(.configuration, "api.token_env: the environment variable \(variable) is not set; export it with the API token (e.g. openssl rand -hex 32)")
            }
            api.token = token
        } else if let token = environment["TIDEMARK_API_TOKEN"]?.trimmingCharacters(in: .whitespacesAndNewlines), !token.isEmpty {
            api.token = token
        }
        if let token = api.token, token.count < 16 {
            throw SyncError(.configuration, "api: the API token is \(token.count) characters long; use at least 16 (e.g. openssl rand -hex 32)")
        }
        if api.enabled && !api.isLoopback && api.token == nil {
            throw SyncError(.configuration, "api.listen is \(api.listen), reachable from other machines, and no API token is configured: set api.token_env (the name of an environment variable holding the token) or api.token_file, or listen on 127.0.0.1")
        }
        return api
    }

    private func validation(_ map: [String: Any]) throws(SyncError) -> AgentConfiguration.Validation {
        var result = AgentConfiguration.Validation()
        if let schedule = try schedule(map, "schedule") { result.schedule = schedule }
        if let schedule = try schedule(map, "repair_schedule") { result.repairSchedule = schedule }
        if let repair = try boolean(map, "validation.auto_repair", "auto_repair") { result.autoRepair = repair }
        if let zone = try string(map, "validation.time_zone", "time_zone") {
            guard let timeZone = TimeZone(identifier: zone.trimmingCharacters(in: .whitespaces)) else {
                throw SyncError(.configuration, "validation.time_zone: '\(zone)' is not a time zone; use an IANA name such as Europe/Berlin or UTC")
            }
            result.timeZone = timeZone
        }
        if let rows = try integer(map, "validation.segment_rows", "segment_rows") {
            guard rows >= 16 else { throw SyncError(.configuration, "validation.segment_rows must be at least 16 (got \(rows))") }
            result.segmentRows = rows
        }
        if let check = try boolean(map, "validation.check_content", "check_content") { result.checkContent = check }
        return result
    }

    /// A cron expression, or `.some(nil)` for `off` (also `none`, `never`, an empty text, or YAML's
    /// `false`); `nil` when the key is not set.
    private func schedule(_ map: [String: Any], _ key: String) throws(SyncError) -> CronExpression?? {
        let path = "validation.\(key)"
        guard let value = map[key] else { return nil }
        if let flag = value as? Bool {
            guard !flag else { throw SyncError(.configuration, "\(path) must be a cron expression such as \"0 2 * * *\", or off") }
            return .some(nil)
        }
        guard let text = try string(map, path, key)?.trimmingCharacters(in: .whitespaces) else { return nil }
        if ["", "off", "none", "never", "false"].contains(text.lowercased()) { return .some(nil) }
        do {
            return .some(try CronExpression(parsing: text))
        } catch {
            throw SyncError(.configuration, "\(path): \(error.message)")
        }
    }

    private func embedder(_ map: [String: Any]) throws(SyncError) -> AgentConfiguration.Embedder {
        let kindText = try string(map, "embedder.kind", "kind") ?? "builtin"
        guard let kind = AgentConfiguration.Embedder.Kind(rawValue: kindText) else {
            let kinds = AgentConfiguration.Embedder.Kind.allCases.map(\.rawValue)
            throw SyncError(.configuration, "embedder.kind: '\(kindText)' is not supported\(suggestion(kindText, Set(kinds))); use one of \(kinds.joined(separator: ", "))")
        }
        var result = AgentConfiguration.Embedder()
        result.kind = kind
        let staticKeys: Set<String> = ["weights", "tokenizer", "tensor"]
        let openAIKeys = Set(Self.sections["embedder"] ?? []).subtracting(staticKeys).subtracting(["kind"])
        let foreign: Set<String> = switch kind {
        case .builtin: staticKeys.union(openAIKeys)
        case .static: openAIKeys
        case .openai: staticKeys
        }
        if let key = map.keys.sorted().first(where: foreign.contains) {
            throw SyncError(.configuration, "embedder.\(key) does not apply to embedder.kind \(kind.rawValue)")
        }
        switch kind {
        case .builtin:
            break
        case .static:
            if let weights = try string(map, "embedder.weights", "weights") { result.staticModel.weights = weights }
            if let tokenizer = try string(map, "embedder.tokenizer", "tokenizer") { result.staticModel.tokenizer = tokenizer }
            result.staticModel.tensor = try string(map, "embedder.tensor", "tensor")
        case .openai:
            guard let url = try string(map, "embedder.url", "url"), !url.isEmpty else {
                throw SyncError(.configuration, "embedder.url is missing: the provider's base URL, e.g. https://api.openai.com/v1 or http://localhost:11434/v1")
            }
            guard url.hasPrefix("http://") || url.hasPrefix("https://") else {
                throw SyncError(.configuration, "embedder.url: '\(ConnectionString.redacted(url))' must start with http:// or https://")
            }
            guard let model = try string(map, "embedder.model", "model"), !model.isEmpty else {
                throw SyncError(.configuration, "embedder.model is missing: name the embedding model, e.g. text-embedding-3-small")
            }
            var openai = OpenAIEmbedder.Configuration(url: url, model: model)
            openai.dimensions = try positive(map, "embedder.dimensions", "dimensions")
            openai.sendDimensions = try boolean(map, "embedder.send_dimensions", "send_dimensions")
            if let timeout = try duration(map, "embedder.timeout", "timeout") { openai.timeout = timeout }
            if let value = try positive(map, "embedder.max_inputs", "max_inputs") { openai.maxInputs = value }
            if let value = try positive(map, "embedder.max_input_tokens", "max_input_tokens") { openai.maxInputTokens = value }
            if let value = try positive(map, "embedder.max_request_tokens", "max_request_tokens") { openai.maxRequestTokens = value }
            openai.requestsPerMinute = try positive(map, "embedder.requests_per_minute", "requests_per_minute")
            openai.tokensPerMinute = try positive(map, "embedder.tokens_per_minute", "tokens_per_minute")
            if let value = try positive(map, "embedder.concurrency", "concurrency") { openai.concurrency = value }
            openai.maxAttempts = try positive(map, "embedder.max_attempts", "max_attempts")
            if let value = try duration(map, "embedder.initial_backoff", "initial_backoff") { openai.initialBackoff = value }
            if let value = try duration(map, "embedder.max_backoff", "max_backoff") { openai.maxBackoff = value }
            if let price = map["price_per_million_tokens"] {
                guard let value = (price as? Double) ?? (price as? Int).map(Double.init) ?? (price as? String).flatMap(Double.init), value >= 0 else {
                    throw SyncError(.configuration, "embedder.price_per_million_tokens must be a number of US dollars, e.g. 0.02")
                }
                openai.pricePerMillionTokens = value
            }
            openai.apiKey = try apiKey(map)
            openai.apiKeyHeader = try string(map, "embedder.api_key_header", "api_key_header")
            result.openai = openai
        }
        return result
    }

    /// The API key: from the file `api_key_file`, else the variable `api_key_env`, else
    /// `TIDEMARK_EMBEDDER_API_KEY` or `OPENAI_API_KEY` when set; `nil` for providers without keys.
    private func apiKey(_ map: [String: Any]) throws(SyncError) -> String? {
        if let file = try string(map, "embedder.api_key_file", "api_key_file") {
            let text: String
            do {
                text = try String(contentsOfFile: file, encoding: .utf8)
            } catch {
                throw SyncError(.configuration, "embedder.api_key_file: cannot read \(file): \(error.localizedDescription)")
            }
            let key = text.trimmingCharacters(in: .whitespacesAndNewlines)
            guard !key.isEmpty else { throw SyncError(.configuration, "embedder.api_key_file: \(file) is empty") }
            return key
        }
        if let variable = try string(map, "embedder.api_key_env", "api_key_env") {
            guard let key = environment[variable], !key.isEmpty else {
                throw SyncError(.configuration, "embedder.api_key_env: the environment variable \(variable) is not set; export it with the provider's API key")
            }
            return key
        }
        return [environment["TIDEMARK_EMBEDDER_API_KEY"], environment["OPENAI_API_KEY"]].compactMap { $0 }.first { !$0.isEmpty }
    }

    private func positive(_ map: [String: Any], _ path: String, _ key: String) throws(SyncError) -> Int? {
        guard let value = try integer(map, path, key) else { return nil }
        guard value > 0 else { throw SyncError(.configuration, "\(path) must be positive (got \(value))") }
        return value
    }

    private func boolean(_ map: [String: Any], _ path: String, _ key: String) throws(SyncError) -> Bool? {
        guard let value = map[key] else { return nil }
        if let flag = value as? Bool { return flag }
        switch (value as? String)?.lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default: throw SyncError(.configuration, "\(path) must be true or false (got '\(value)')")
        }
    }

    private func string(_ map: [String: Any], _ path: String, _ key: String) throws(SyncError) -> String? {
        guard let value = map[key] else { return nil }
        switch value {
        case let text as String: return text
        case let number as Int: return String(number)
        case let number as Double: return String(number)
        default: throw SyncError(.configuration, "\(path) must be a string")
        }
    }

    private func integer(_ map: [String: Any], _ path: String, _ key: String) throws(SyncError) -> Int? {
        guard let value = map[key] else { return nil }
        if let number = value as? Int { return number }
        if let text = value as? String, let number = Int(text.trimmingCharacters(in: .whitespaces)) { return number }
        throw SyncError(.configuration, "\(path) must be a whole number (got '\(value)')")
    }

    private func list(_ map: [String: Any], _ path: String, _ key: String) throws(SyncError) -> [String]? {
        guard let value = map[key] else { return nil }
        if let items = value as? [Any] {
            var result: [String] = []
            for item in items {
                guard let text = item as? String ?? (item as? Int).map(String.init) else {
                    throw SyncError(.configuration, "\(path) must be a list of column names")
                }
                result.append(text)
            }
            return result
        }
        if let text = value as? String {
            return text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        throw SyncError(.configuration, "\(path) must be a list of column names")
    }

    /// `250ms`, `10s`, `2m`, or a number of seconds.
    private func duration(_ map: [String: Any], _ path: String, _ key: String) throws(SyncError) -> Duration? {
        guard let value = map[key] else { return nil }
        if let seconds = value as? Int { return .seconds(seconds) }
        if let seconds = value as? Double { return .milliseconds(Int64(seconds * 1000)) }
        if let text = (value as? String)?.trimmingCharacters(in: .whitespaces) {
            let digits = text.prefix { $0.isNumber || $0 == "." }
            let unit = text.dropFirst(digits.count).trimmingCharacters(in: .whitespaces)
            if let number = Double(digits) {
                switch unit {
                case "ms": return .milliseconds(Int64(number))
                case "", "s": return .milliseconds(Int64(number * 1000))
                case "m", "min": return .milliseconds(Int64(number * 60_000))
                default: break
                }
            }
        }
        throw SyncError(.configuration, "\(path) must be a duration such as 250ms, 10s or 2m (got '\(value)')")
    }

    private func identifier(_ name: String, _ path: String) throws(SyncError) -> String {
        guard name.range(of: "^[a-z_][a-z0-9_]{0,62}$", options: .regularExpression) != nil else {
            throw SyncError(.configuration, "\(path): '\(name)' must be lower-case letters, digits and _ (at most 63), as PostgreSQL slot names are")
        }
        return name
    }
}
