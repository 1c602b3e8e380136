import Capture
import Foundation
import Indexing
import Postgres
import Testing

@testable import Sync

/// `RowSource.fetch` re-reads rows by key (unchanged TOAST values, dead-letter retries): typed keys,
/// many per query, through the key's index.
@Suite(.serialized) struct RowSourceTests {
    /// The entity mapping the agent would build for `table` (key types from the catalog).
    func mapping(_ db: TestDatabase, table: String, content: String) async throws -> EntityMapping {
        let entity = AgentConfiguration.Entity(name: table, table: TableName(schema: "public", name: table), content: content)
        return try #require(try await Agent.resolveEntities(db.agentConfiguration(entities: [entity]), on: db.connection, logger: testLogger).first)
    }

    /// Makes this session report its own table statistics (the setup's scans) before a baseline.
    func flushOwnStatistics(_ db: TestDatabase) async throws {
        try await db.connection.query("SELECT pg_stat_force_next_flush()")
        try await db.connection.query("SELECT 1")
        try await Task.sleep(for: .milliseconds(200))
    }

    func scans(_ db: TestDatabase, _ table: String) async throws -> (seq: Int, index: Int) {
        let row = try await db.connection.query(
            "SELECT seq_scan::text, coalesce(idx_scan, 0)::text FROM pg_stat_user_tables WHERE relname = $1", [table]).rows.first
        return (Int(row?[0] ?? "") ?? -1, Int(row?[1] ?? "") ?? -1)
    }

    /// Statistics reach `pg_stat_user_tables` when the reading session reports them (at most a few
    /// seconds after its last query); wait until the index scans show up or time runs out.
    func scansAfter(_ db: TestDatabase, _ table: String, before: (seq: Int, index: Int)) async throws -> (seq: Int, index: Int) {
        var now = try await scans(db, table)
        let deadline = ContinuousClock.now + .seconds(20)
        while now.index == before.index && now.seq == before.seq && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
            _ = try await db.connection.query("SELECT pg_stat_clear_snapshot()")
            now = try await scans(db, table)
        }
        return now
    }

    @Test(arguments: LiveServer.all)
    func fetchReadsManyTypedKeysPerQueryThroughTheIndex(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await db.exec("""
                CREATE TABLE big (id bigint PRIMARY KEY, title text NOT NULL);
                INSERT INTO big SELECT g * 3, 'big ' || g FROM generate_series(1, 300000) g;
                CREATE TABLE by_uuid (id uuid PRIMARY KEY, title text);
                INSERT INTO by_uuid SELECT md5(g::text)::uuid, 'uuid ' || g FROM generate_series(1, 6000) g;
                CREATE TABLE by_text (code text PRIMARY KEY, title text);
                INSERT INTO by_text SELECT 'a "quoted", comma\\back {brace} ' || g, 'text ' || g FROM generate_series(1, 6000) g;
                INSERT INTO by_text VALUES ('', 'empty'), ('NULL', 'the word'), ('  spaced  ', 'spaces'), ('ünï😀', 'unicode');
                CREATE TABLE composite (tenant int, code varchar(40), title text, PRIMARY KEY (tenant, code));
                INSERT INTO composite SELECT g % 7, 'c,"' || g, 'composite ' || g FROM generate_series(1, 300000) g;
                ANALYZE;
                """)
            let source = RowSource(url: db.url, logger: testLogger)
            try await flushOwnStatistics(db)

            // bigint: the index, not a scan of the table per id.
            let big = try await mapping(db, table: "big", content: "{{title}}")
            #expect(big.keyTypes == ["bigint"])
            let sample = (1...200).map { String($0 * 4_500) }  // some are not multiples of 3: absent
            let beforeBig = try await scans(db, "big")
            let bigRows = try await source.fetch(big, ids: sample)
            let afterBig = try await scansAfter(db, "big", before: beforeBig)
            try #require(afterBig.seq == beforeBig.seq, "no sequential scan of the large table (\(beforeBig) → \(afterBig))")
            try #require(afterBig.index > beforeBig.index, "the primary key index was used (\(beforeBig) → \(afterBig))")
            #expect(Set(bigRows.keys) == Set(sample.filter { Int($0)! % 3 == 0 }))
            #expect(bigRows["9000"]?["title"] == "big 3000")

            // ~5000 ids in one call, for each kind of key; missing ids are simply absent.
            let many = (1...5_000).map { String($0 * 3) } + ["1", "2", "4"]
            let manyRows = try await source.fetch(big, ids: many)
            #expect(manyRows.count == 5_000 && manyRows["15000"]?["title"] == "big 5000")
            // An id that is no bigint matches nothing; the others of its slice are still found.
            let odd = try await source.fetch(big, ids: ["abc", "9000"])
            #expect(odd.keys.sorted() == ["9000"])

            let uuid = try await mapping(db, table: "by_uuid", content: "{{title}}")
            let uuids = try await db.connection.query("SELECT id::text, title FROM by_uuid ORDER BY title LIMIT 5000")
            let uuidRows = try await source.fetch(uuid, ids: uuids.rows.map { $0[0]! } + ["00000000-0000-0000-0000-000000000000"])
            #expect(uuidRows.count == 5_000)
            #expect(uuids.rows.allSatisfy { uuidRows[$0[0]!]?["title"] == $0[1] })

            let text = try await mapping(db, table: "by_text", content: "{{title}}")
            let codes = (1...4_996).map { "a \"quoted\", comma\\back {brace} \($0)" } + ["", "NULL", "  spaced  ", "ünï😀", "absent, \"really\""]
            let textRows = try await source.fetch(text, ids: codes)
            #expect(textRows.count == 5_000)
            #expect(textRows["a \"quoted\", comma\\back {brace} 17"]?["title"] == "text 17")
            #expect(textRows[""]?["title"] == "empty" && textRows["NULL"]?["title"] == "the word")
            #expect(textRows["  spaced  "]?["title"] == "spaces" && textRows["ünï😀"]?["title"] == "unicode")

            let composite = try await mapping(db, table: "composite", content: "{{title}}")
            #expect(composite.keyTypes == ["integer", "character varying(40)"])
            let pairs = (1...5_000).map { DocumentID.make([String($0 * 60 % 7), "c,\"\($0 * 60)"]) } + [DocumentID.make(["2", "c,\"1"])]
            let beforeComposite = try await scans(db, "composite")
            let fewRows = try await source.fetch(composite, ids: Array(pairs.prefix(100)))
            let afterComposite = try await scansAfter(db, "composite", before: beforeComposite)
            #expect(afterComposite.seq == beforeComposite.seq, "no sequential scan (\(beforeComposite) → \(afterComposite))")
            #expect(afterComposite.index > beforeComposite.index, "composite keys use the primary key index (\(beforeComposite) → \(afterComposite))")
            #expect(fewRows.count == 100)
            let compositeRows = try await source.fetch(composite, ids: pairs)
            #expect(compositeRows.count == 5_000, "every existing pair, not (2, c,\"1)")
            #expect(compositeRows[DocumentID.make([String(120 % 7), "c,\"120"])]?["title"] == "composite 120")
            #expect(compositeRows[DocumentID.make([String(120 % 7), "c,\"120"])]?["code"] == "c,\"120")
            await source.close()
        }
    }
}
