import Foundation
import GRDB
import Indexing
import Postgres
import Testing

@testable import Sync

/// Where a live test keeps its index, so that one test runs against every store: a SQLite file, or
/// pgvector (PostgreSQL 18 with pgvector) in the source database itself or on the other server.
enum IndexKind: String, Sendable, CustomStringConvertible {
    case sqlite
    /// A `tidemark` schema in the source database (PostgreSQL 18 only: pgvector is built for it).
    case pgvector
    /// A database of its own on the PostgreSQL 18 server, the source on another server.
    case pgvectorElsewhere = "pgvector-elsewhere"

    var description: String { rawValue }
}

/// A source server and an index kind.
struct LiveCase: Sendable, CustomStringConvertible {
    var server: LiveServer
    var index: IndexKind
    var description: String { "\(server.name)/\(index)" }

    /// The PostgreSQL 18 server, whose build has pgvector.
    static var vectorServer: LiveServer? { LiveServer.all.first { $0.name == "pg18" } }

    /// Every server with SQLite, pgvector in the PostgreSQL 18 source, and PostgreSQL 15 with its
    /// index in pgvector on the PostgreSQL 18 server.
    static let all: [LiveCase] = {
        var cases = LiveServer.all.map { LiveCase(server: $0, index: .sqlite) }
        if let vector = vectorServer {
            cases.append(LiveCase(server: vector, index: .pgvector))
            for server in LiveServer.all where server.name != vector.name { cases.append(LiveCase(server: server, index: .pgvectorElsewhere)) }
        }
        return cases
    }()

    /// One case per store: SQLite on the first server, pgvector in the PostgreSQL 18 source.
    static let eachStore: [LiveCase] = {
        var cases = LiveServer.first.map { LiveCase(server: $0, index: .sqlite) }
        if let vector = vectorServer { cases.append(LiveCase(server: vector, index: .pgvector)) }
        return cases
    }()
}

/// The index of one test: its configuration (as YAML and as `AgentConfiguration.Index`), a way to
/// open it, and clean-up.
struct TestIndex: Sendable {
    var kind: IndexKind
    var index: AgentConfiguration.Index
    /// The `index:` line of a tidemark.yml.
    var yaml: String
    /// A database created for the index on the other server (dropped by ``drop()``).
    var database: TestDatabase?

    /// Prepares the index for a test whose source is `db`; `directory` holds a SQLite file.
    static func make(_ kind: IndexKind, for db: TestDatabase, directory: String) async throws -> TestIndex {
        switch kind {
        case .sqlite:
            let path = directory + "/index.db"
            return TestIndex(kind: kind, index: .sqlite(path: path), yaml: "index: { kind: sqlite, path: \"\(path)\" }")
        case .pgvector:
            return TestIndex(
                kind: kind, index: .pgvector(url: db.url, schema: "tidemark"),
                yaml: "index: { kind: pgvector, schema: tidemark }")
        case .pgvectorElsewhere:
            let server = try #require(LiveCase.vectorServer, "pgvector needs the PostgreSQL 18 server")
            let database = try await TestDatabase.create(on: server)
            return TestIndex(
                kind: kind, index: .pgvector(url: database.url, schema: "tm_index"),
                yaml: "index: { kind: pgvector, url: \"\(database.url)\", schema: tm_index }", database: database)
        }
    }

    /// Opens the index as the agent does.
    func open() async throws -> any IndexStore {
        switch index {
        case .sqlite(let path): return try SQLiteIndexStore(configuration: .init(path: path), logger: testLogger)
        case .pgvector(let url, let schema): return try await PgVectorIndexStore.open(configuration: .init(url: url, schema: schema), logger: testLogger)
        }
    }

    func drop() async {
        await database?.drop()
    }

    /// Runs SQL against the index's documents table behind the agent's back (`DOCUMENTS` stands for
    /// it): in the SQLite file, or in the pgvector schema.
    func editBehindTheAgent(_ sql: String) async throws {
        switch index {
        case .sqlite(let path):
            let queue = try DatabaseQueue(path: path)
            try await queue.write { db in try db.execute(sql: sql.replacingOccurrences(of: "DOCUMENTS", with: "documents")) }
            try queue.close()
        case .pgvector(let url, let schema):
            let connection = try await PostgresConnection.connect(url, logger: testLogger)
            defer { Task { await connection.close() } }
            try await connection.simpleQuery(sql.replacingOccurrences(of: "DOCUMENTS", with: "\(schema).documents"))
        }
    }
}

/// Runs `body` with a fresh source database on the case's server and its index, dropping both
/// afterwards.
func withDatabase(_ live: LiveCase, directory: String, _ body: (TestDatabase, TestIndex) async throws -> Void) async throws {
    try await withDatabase(on: live.server) { db in
        let index = try await TestIndex.make(live.index, for: db, directory: directory)
        do {
            try await body(db, index)
        } catch {
            await index.drop()
            throw error
        }
        await index.drop()
    }
}
