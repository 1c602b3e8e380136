@testable import Capture
import Indexing
import Testing

@testable import Sync

@Suite struct ConfigurationTests {
    let valid = """
        source: { url: "postgres://app:s3cret@localhost:5432/shop" }
        index: { kind: sqlite, path: /tmp/x.db }
        embedder: { kind: builtin }
        entities:
          product:
            table: public.products
            content: "{{name}}\\n{{description}}"
            metadata: [price, category_id]
        """

    func parse(_ text: String, environment: [String: String] = [:]) throws(SyncError) -> AgentConfiguration {
        try ConfigurationLoader(environment: environment).parse(text)
    }

    func message(_ text: String, environment: [String: String] = [:]) -> String {
        do {
            _ = try parse(text, environment: environment)
            return "no error"
        } catch {
            return error.message
        }
    }

    @Test func embeddingConcurrencyDefaultsByEmbedderKind() throws {
        var configuration = AgentConfiguration(source: .init(url: "postgres://localhost/db"), entities: [])
        #expect(configuration.pipeline.embeddingConcurrency == nil && configuration.embeddingConcurrency == 1, "built-in: one batch at a time")
        configuration.embedder.kind = .openai
        #expect(configuration.embeddingConcurrency == 4, "a provider's requests wait on the network")
        configuration.embedder.kind = .static
        #expect(configuration.embeddingConcurrency == 4, "the static model's batches use both cores")
        configuration.pipeline.embeddingConcurrency = 6
        #expect(configuration.embeddingConcurrency == 6, "a configured value wins")
    }

    @Test func validConfigurationWithDefaults() throws {
        let configuration = try parse(valid)
        #expect(configuration.source.slot == "tidemark")
        #expect(configuration.source.publication == "tidemark")
        #expect(configuration.entities.map(\.name) == ["product"])
        #expect(configuration.entities[0].table == TableName(schema: "public", name: "products"))
        #expect(configuration.entities[0].content == "{{name}}\n{{description}}")
        #expect(configuration.entities[0].metadata == ["price", "category_id"])
        #expect(configuration.pipeline.batchSize == 1_000)
        #expect(!configuration.source.redactedURL.contains("s3cret"))
    }

    @Test func unknownKeysNameTheirPath() {
        #expect(message(valid + "\nextra: 1").contains("unknown key 'extra'"))
        #expect(message(valid.replacingOccurrences(of: "kind: sqlite, path", with: "kind: sqlite, pth")).contains("'index.pth' (did you mean 'path'?)"))
        #expect(message(valid.replacingOccurrences(of: "metadata:", with: "metdata:")).contains("'entities.product.metdata' (did you mean 'metadata'?)"))
    }

    @Test func missingAndMalformedValuesNameTheirPath() {
        #expect(message("entities: { a: { table: t, content: x } }").contains("source.url is missing"))
        #expect(message("source: { url: x }").contains("entities is empty"))
        #expect(message("source: { url: x }\nentities: { a: { content: x } }").contains("entities.a.table is missing"))
        #expect(message("source: { url: x }\nentities: { a: { table: t } }").contains("entities.a.content is missing"))
        #expect(message("source: { url: x }\nentities: { a: { table: a.b.c, content: x } }").contains("entities.a.table"))
        #expect(message(valid + "\npipeline: { batch_size: lots }").contains("pipeline.batch_size must be a whole number"))
        #expect(message(valid + "\npipeline: { batch_delay: soon }").contains("pipeline.batch_delay must be a duration"))
        #expect(message(valid.replacingOccurrences(of: "kind: builtin", with: "kind: magic")).contains("embedder.kind"))
        #expect(message(valid.replacingOccurrences(of: "{ url:", with: "{ slot: Bad-Slot, url:")).contains("source.slot"))
        #expect(message("source: [1, 2]").contains("source must be a mapping"))
        #expect(message("source: {").contains("not valid YAML"))
    }

    @Test func environmentOverridesEveryKey() throws {
        let configuration = try parse(valid, environment: [
            "TIDEMARK_SOURCE_URL": "postgres://other/db",
            "TIDEMARK_SOURCE_SLOT": "custom_slot",
            "TIDEMARK_INDEX_PATH": "/tmp/other.db",
            "TIDEMARK_PIPELINE_BATCH_SIZE": "250",
            "TIDEMARK_ENTITIES_PRODUCT_CONTENT": "{{name}}",
            "TIDEMARK_ENTITIES_PRODUCT_METADATA": "price, stock",
        ])
        #expect(configuration.source.url == "postgres://other/db")
        #expect(configuration.source.slot == "custom_slot")
        guard case .sqlite(let path) = configuration.index else { return }
        #expect(path == "/tmp/other.db")
        #expect(configuration.pipeline.batchSize == 250)
        #expect(configuration.entities[0].content == "{{name}}")
        #expect(configuration.entities[0].metadata == ["price", "stock"])
        // The environment alone can supply the source.
        let fromEnvironment = try parse("entities: { a: { table: t, content: x } }", environment: ["TIDEMARK_SOURCE_URL": "postgres://h/d"])
        #expect(fromEnvironment.source.url == "postgres://h/d")
    }

    @Test func backfillMaxChunkBytesIsConfigurable() throws {
        #expect(try parse(valid).backfill.maxChunkBytes == 16 << 20, "default 16 MiB")
        #expect(try parse(valid + "\nbackfill: { max_chunk_bytes: 2000000 }").backfill.maxChunkBytes == 2_000_000)
        let fromEnvironment = try parse(valid, environment: ["TIDEMARK_BACKFILL_MAX_CHUNK_BYTES": "1048576"])
        #expect(fromEnvironment.backfill.maxChunkBytes == 1 << 20)
        #expect(message(valid + "\nbackfill: { max_chunk_bytes: 0 }").contains("backfill.max_chunk_bytes must be positive"))
        #expect(message(valid + "\nbackfill: { max_chunk_bytes: lots }").contains("backfill.max_chunk_bytes must be a whole number"))
    }

    // MARK: - Against the catalog

    func table(_ name: String, columns: [String], key: [String], identity: String = "default", reason: String? = nil) -> TableDescription {
        TableDescription(
            table: TableName(parsing: name)!,
            columns: columns.map { .init(name: $0, type: "text", typeOID: 25, notNull: false, isTextLike: true, isGenerated: false, isOrderable: true) },
            primaryKey: key, keyColumns: key, replicaIdentity: identity, estimatedRows: 0, isPublished: false,
            unsyncableReason: reason)
    }

    func resolveMessage(_ text: String, _ catalog: [TableDescription]) -> String {
        do {
            _ = try EntityResolver.resolve(try parse(text).entities, catalog: catalog)
            return "no error"
        } catch {
            return error.message
        }
    }

    @Test func catalogMismatchesNameTheKeyAndTheFix() throws {
        let products = table("public.products", columns: ["id", "name", "description", "price", "category_id"], key: ["id"])
        #expect(resolveMessage(valid, [products]) == "no error")
        let mappings = try EntityResolver.resolve(try parse(valid).entities, catalog: [products])
        #expect(mappings[0].keyColumns == ["id"])
        #expect(mappings[0].selectColumns == ["id", "name", "description", "price", "category_id"])

        let missingTable = resolveMessage(valid, [table("public.product", columns: ["id"], key: ["id"])])
        #expect(missingTable.contains("entities.product.table: table public.products does not exist"))
        #expect(missingTable.contains("did you mean public.product?"))

        let badTemplate = resolveMessage(valid.replacingOccurrences(of: "{{description}}", with: "{{descripton}}"), [products])
        #expect(badTemplate.contains("entities.product.content: the template uses {{descripton}}"))

        let badMetadata = resolveMessage(valid.replacingOccurrences(of: "category_id]", with: "colour]"), [products])
        #expect(badMetadata.contains("entities.product.metadata: metadata column \"colour\""))

        let keyless = table("public.products", columns: ["id", "name", "description", "price", "category_id"], key: [],
                            reason: "no primary key and REPLICA IDENTITY DEFAULT: … Fix: add a primary key")
        let keylessMessage = resolveMessage(valid, [keyless])
        #expect(keylessMessage.contains("entities.product.table: public.products cannot be synced: no primary key"))

        let wrongKey = resolveMessage(valid.replacingOccurrences(of: "metadata: [price, category_id]", with: "metadata: [price]\n    key: [name]"), [products])
        #expect(wrongKey.contains("entities.product.key"))
        #expect(wrongKey.contains("REPLICA IDENTITY FULL"))
    }
}
