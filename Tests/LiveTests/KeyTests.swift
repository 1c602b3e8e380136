import Capture
import Foundation
import Indexing
import Postgres
import Testing

@testable import Sync

/// A key must be unique and NOT NULL: the primary key, or a unique index (not partial, no
/// expressions, not deferrable) over NOT NULL columns. Anything else is refused at start-up with a
/// message naming the table and the fix, because rows with NULL keys are skipped by the backfill's
/// key comparisons (and swept away), and rows with equal keys collapse into one document.
@Suite(.serialized) struct KeyTests {
    func resolve(_ db: TestDatabase, _ entity: AgentConfiguration.Entity) async throws -> [EntityMapping] {
        try await Agent.resolveEntities(db.agentConfiguration(entities: [entity]), on: db.connection, logger: testLogger)
    }

    func refusal(_ db: TestDatabase, _ entity: AgentConfiguration.Entity, sourceLocation: SourceLocation = #_sourceLocation) async -> String {
        do {
            let mappings = try await resolve(db, entity)
            Issue.record("accepted with key \(mappings.first?.keyColumns ?? [])", sourceLocation: sourceLocation)
            return ""
        } catch let error as SyncError {
            return error.message
        } catch {
            Issue.record("unexpected error \(error)", sourceLocation: sourceLocation)
            return ""
        }
    }

    @Test(arguments: LiveServer.first)
    func aConfiguredKeyThatMayBeNullIsRefused(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await db.exec("""
                CREATE TABLE people (id int PRIMARY KEY, email text, name text NOT NULL);
                CREATE UNIQUE INDEX people_email ON people (email);
                ALTER TABLE people REPLICA IDENTITY FULL;
                """)
            let message = await refusal(db, .init(
                name: "person", table: TableName(schema: "public", name: "people"), content: "{{name}}", key: ["email"]))
            #expect(message.contains("entities.person.key"), "\(message)")
            #expect(message.contains("public.people"), "\(message)")
            #expect(message.contains("\"email\" may be NULL") || message.contains("email is nullable") || message.contains("NULL"), "\(message)")
            #expect(message.contains("ALTER TABLE public.people ALTER COLUMN email SET NOT NULL"), "the fix: \(message)")
        }
    }

    @Test(arguments: LiveServer.first)
    func aConfiguredKeyThatIsNotUniqueIsRefused(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await db.exec("""
                CREATE TABLE people (id int PRIMARY KEY, email text NOT NULL, name text NOT NULL);
                CREATE INDEX people_name ON people (name);
                CREATE UNIQUE INDEX people_email_partial ON people (email) WHERE id > 0;
                CREATE UNIQUE INDEX people_lower_email ON people (lower(email));
                ALTER TABLE people ADD CONSTRAINT people_email_deferred UNIQUE (email, name) DEFERRABLE INITIALLY DEFERRED;
                ALTER TABLE people REPLICA IDENTITY FULL;
                """)
            // A plain index, a partial unique index, an expression index, a deferrable constraint:
            // none makes its columns a key.
            for key in [["name"], ["email"], ["email", "name"]] {
                let message = await refusal(db, .init(
                    name: "person", table: TableName(schema: "public", name: "people"), content: "{{name}}", key: key))
                #expect(message.contains("entities.person.key"), "\(message)")
                #expect(message.contains("public.people") && message.contains("not unique"), "\(message)")
                #expect(message.contains("CREATE UNIQUE INDEX ON public.people (\(key.joined(separator: ", ")))"), "the fix: \(message)")
                #expect(message.contains("remove the key setting"), "the other fix: \(message)")
            }
            // The primary key, configured explicitly, is fine.
            let mappings = try await resolve(db, .init(
                name: "person", table: TableName(schema: "public", name: "people"), content: "{{name}}", key: ["id"]))
            #expect(mappings.first?.keyColumns == ["id"])
        }
    }

    @Test(arguments: LiveServer.first)
    func fullIdentityWithoutPrimaryKeyOrUniqueIndexIsRefused(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await db.exec("""
                CREATE TABLE notes (body text, author text);
                ALTER TABLE notes REPLICA IDENTITY FULL;
                CREATE TABLE drafts (code text, body text);
                CREATE UNIQUE INDEX drafts_code ON drafts (code);
                ALTER TABLE drafts REPLICA IDENTITY FULL;
                """)
            let notes = await refusal(db, .init(name: "note", table: TableName(schema: "public", name: "notes"), content: "{{body}}"))
            #expect(notes.contains("entities.note.table") && notes.contains("public.notes"), "\(notes)")
            #expect(notes.contains("REPLICA IDENTITY FULL"), "\(notes)")
            #expect(notes.contains("add a primary key") && notes.contains("unique index"), "the fix: \(notes)")

            // A unique index over a nullable column is not enough; the fix says which column.
            let drafts = await refusal(db, .init(name: "draft", table: TableName(schema: "public", name: "drafts"), content: "{{body}}"))
            #expect(drafts.contains("public.drafts"), "\(drafts)")
            #expect(drafts.contains("ALTER TABLE public.drafts ALTER COLUMN code SET NOT NULL"), "the fix: \(drafts)")

            // discover reports the same reasons.
            let tables = try await CatalogDiscovery(logger: testLogger).discover(on: db.connection)
            for name in ["notes", "drafts"] {
                let table = try #require(tables.first { $0.table.name == name })
                #expect(!table.isSyncable && table.keyColumns.isEmpty, "\(name): key \(table.keyColumns)")
            }
            if let binary = TidemarkBinary.path {
                let output = try await TidemarkBinary.run(binary, ["discover", "--source", db.url])
                #expect(output.output.contains("public.notes: REPLICA IDENTITY FULL"), "\(output.output)")
                #expect(output.output.contains("ALTER COLUMN code SET NOT NULL"), "\(output.output)")
            }
        }
    }

    @Test(arguments: LiveServer.all)
    func fullIdentityWithAUniqueNotNullIndexSyncsEndToEnd(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            // No primary key; NULLs and repeated values in every other column.
            try await db.exec("""
                CREATE TABLE tags (code text NOT NULL, label text, note text);
                CREATE UNIQUE INDEX tags_code ON tags (code);
                ALTER TABLE tags REPLICA IDENTITY FULL;
                INSERT INTO tags SELECT 'c' || g, CASE WHEN g % 3 = 0 THEN NULL ELSE 'same label' END,
                                        CASE WHEN g % 2 = 0 THEN NULL ELSE 'n' END
                  FROM generate_series(1, 3000) g;
                """)
            let table = try #require(try await CatalogDiscovery(logger: testLogger).discover(on: db.connection).first { $0.table.name == "tags" })
            #expect(table.isSyncable && table.keyColumns == ["code"], "the unique NOT NULL index is the key: \(table.keyColumns)")

            let entity = AgentConfiguration.Entity(
                name: "tag", table: TableName(schema: "public", name: "tags"), content: "{{code}}: {{label}} {{note}}")
            var configuration = db.agentConfiguration(entities: [entity])
            configuration.backfill.chunkDuration = .milliseconds(20)
            try await withAgent(configuration) { _, store in
                try await db.exec("""
                    INSERT INTO tags VALUES ('new1', NULL, NULL), ('new2', 'same label', NULL);
                    UPDATE tags SET label = NULL WHERE code IN ('c1', 'c2');
                    UPDATE tags SET code = 'renamed5' WHERE code = 'c5';
                    DELETE FROM tags WHERE code IN ('c3', 'c4');
                    """)
                try await waitForCheckpoint(store, try await db.currentLSN())
                let result = try await BackfillTests.compare(
                    db, store, entity: "tag", template: "{{code}}: {{label}} {{note}}", sql: "SELECT code, label, note FROM tags")
                #expect(result.rows == 3000, "3000 + 2 inserted - 2 deleted")
                #expect(result.missing == 0 && result.extra == 0 && result.stale == 0, "\(result)")
                let first = try await store.export(entity: "tag", after: nil, limit: 1)
                #expect(first.first?.id == "c1", "documents are keyed by code alone")
            }
        }
    }
}
