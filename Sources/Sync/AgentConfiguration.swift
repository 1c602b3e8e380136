import Embedding
import Capture
import Foundation
import Postgres

/// Everything `tidemark run` needs, validated. Built by ``ConfigurationLoader``.
public struct AgentConfiguration: Sendable {
    public struct Source: Sendable {
        /// URL or conninfo of the source database. Holds a password at most through the
        /// environment or file it came from; never printed (see ``redactedURL``).
        public var url: String
        /// Replication slot name. Default `tidemark`.
        public var slot = "tidemark"
        /// Publication name. Default `tidemark`.
        public var publication = "tidemark"
        /// How often an idle agent writes a heartbeat message so that the checkpoint and the slot
        /// advance. Default 10 s.
        public var heartbeatInterval: Duration = .seconds(10)
        /// How often the partitions of partitioned entity tables are read again, to notice an
        /// `ATTACH` or `DETACH PARTITION` (which the stream does not carry). Default 5 s.
        public var partitionCheckInterval: Duration = .seconds(5)

        public var redactedURL: String { ConnectionString.redacted(url) }

        public init(url: String) { self.url = url }
    }

    public enum Index: Sendable {
        /// The embedded default: one SQLite file.
        case sqlite(path: String)
        /// PostgreSQL with pgvector: the source database or another server, in a schema of its own.
        case pgvector(url: String, schema: String)
    }

    public struct Embedder: Sendable {
        public enum Kind: String, Sendable, CaseIterable {
            /// Model-free lexical hashing (`tidemark-hash-384-v1`): offline, deterministic.
            case builtin
            /// A static embedding model read from files (semantic, offline).
            case `static`
            /// An OpenAI-compatible `/embeddings` API.
            case openai
        }
        public var kind: Kind = .builtin
        /// Settings for kind `static`.
        public var staticModel = StaticEmbedder.Configuration()
        /// Settings for kind `openai` (`nil` for the other kinds).
        public var openai: OpenAIEmbedder.Configuration?
    }

    /// How long content is split into chunks, each embedded and stored on its own.
    public struct Chunking: Sendable, Equatable {
        /// Content of more tokens than this (the embedder's count) is split into chunks of at most
        /// this many tokens; shorter content is one chunk. Default 512.
        public var maxTokens = 512
        /// Tokens each chunk repeats from the end of the one before, so that a sentence cut at a
        /// border is whole in one of them. Default 64.
        public var overlapTokens = 64
    }

    public struct Pipeline: Sendable {
        /// Most changes in one index transaction. Default 1000.
        public var batchSize = 1_000
        /// Most content bytes in one index transaction. Default 4 MiB.
        public var batchBytes = 4 << 20
        /// Longest a change waits for its batch to fill while more input is arriving. Default 50 ms.
        public var batchDelay: Duration = .milliseconds(50)
        /// Batches whose embeddings are computed at once (each may send several provider requests,
        /// within the embedder's own concurrency and budgets). `nil` (the default): 1 for the
        /// built-in hashing embedder, which takes microseconds a batch (more workers would only keep
        /// more batches in memory), and 4 otherwise: a provider's requests wait on the network, and
        /// the static model's batches use more than one core.
        public var embeddingConcurrency: Int?
    }

    public struct Backfill: Sendable {
        /// Backfill jobs running at once. Default 2.
        public var maxConcurrent = 2
        /// How long one chunk's read should take; chunk sizes adapt to it. Default 250 ms.
        public var chunkDuration: Duration = .milliseconds(250)
        /// Most bytes (text forms of the values read) in one chunk, which bounds the memory a chunk of
        /// wide rows takes; a row larger than this is read alone. Default 16 MiB.
        public var maxChunkBytes = 16 << 20
    }

    public struct Entity: Sendable {
        public var name: String
        public var table: TableName
        /// Mustache template over the row's columns.
        public var content: String
        public var metadata: [String] = []
        /// Key columns; `nil` means the table's primary key (or replica identity).
        public var key: [String]?

        public init(name: String, table: TableName, content: String, metadata: [String] = [], key: [String]? = nil) {
            self.name = name
            self.table = table
            self.content = content
            self.metadata = metadata
            self.key = key
        }
    }

    public var source: Source
    public var index: Index = .sqlite(path: "tidemark.db")
    public var embedder = Embedder()

    /// Batches embedded at once: ``Pipeline/embeddingConcurrency`` when set, else 1 for the built-in
    /// embedder and 4 for the others.
    public var embeddingConcurrency: Int { pipeline.embeddingConcurrency ?? (embedder.kind == .builtin ? 1 : 4) }
    public var chunking = Chunking()
    public var pipeline = Pipeline()
    public var backfill = Backfill()
    /// The HTTP API, admin page and metrics endpoint (``API``).
    public var api = API()
    /// Validation and repair schedules (``Validation``).
    public var validation = Validation()
    /// Sorted by name.
    public var entities: [Entity]

    public init(source: Source, entities: [Entity]) {
        self.source = source
        self.entities = entities
    }
}
