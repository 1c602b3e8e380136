import Embedding
import Capture
import Foundation
import Indexing
import Logging
import Postgres
import ServiceLifecycle
import Synchronization
import Testing

@testable import Sync

/// An embedder that takes its time, so a chunk's batch is applied well after the worker moved on.
final class SlowEmbedder: Embedder {
    let inner = BuiltinEmbedder()
    let delay: Duration
    var model: String { inner.model }
    var dimensions: Int { inner.dimensions }
    var maxBatchSize: Int { 64 }
    private let calls = Mutex(0)

    init(delay: Duration) { self.delay = delay }

    /// Whether the pipeline has started embedding (so a chunk was released to it).
    var started: Bool { calls.withLock { $0 } > 0 }

    func embed(_ texts: [String]) async throws -> [[Float]] {
        calls.withLock { $0 += 1 }
        try await Task.sleep(for: delay)
        return try await inner.embed(texts)
    }
}

@Suite struct JobStatusLiveTests {
    /// A backfill worker fails on its second chunk while its first chunk's batch, carrying the job's
    /// progress record ("running"), is still on its way to the index. When that batch lands, the
    /// job must stay failed; otherwise the scheduler sees a running job and starts it again, and a
    /// job that cannot succeed restarts forever.
    @Test(arguments: LiveServer.first)
    func aFailedBackfillStaysFailedWhenItsLastChunkLandsLater(server: LiveServer) async throws {
        let role = "tm_role_" + UUID().uuidString.prefix(8).lowercased()
        try await withDatabase(on: server) { db in
            // Row 1001 cannot be read: a row-level security policy raises for it, once the test lets
            // it (an advisory lock the test holds until the first chunk, rows 1…1000, has reached
            // the embedder). Policies do not apply to superusers, so the agent connects as an
            // ordinary replication role.
            try await db.exec("""
                CREATE ROLE \(role) LOGIN REPLICATION;
                GRANT CREATE ON DATABASE \(db.name) TO \(role);
                CREATE TABLE items (id int PRIMARY KEY, title text NOT NULL);
                INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100000) g;
                ANALYZE items;
                ALTER TABLE items OWNER TO \(role);
                CREATE FUNCTION readable(id int) RETURNS boolean LANGUAGE plpgsql AS $$
                BEGIN
                  IF id = 1001 THEN
                    PERFORM pg_advisory_lock_shared(4242);
                    RAISE EXCEPTION 'row % cannot be read', id;
                  END IF;
                  RETURN true;
                END $$;
                ALTER TABLE items ENABLE ROW LEVEL SECURITY;
                ALTER TABLE items FORCE ROW LEVEL SECURITY;
                CREATE POLICY readable_rows ON items USING (readable(id));
                """)
            var configuration = db.agentConfiguration(entities: [.init(name: "item", table: TableName(schema: "public", name: "items"), content: "{{title}}")])
            configuration.source.url = db.url.replacingOccurrences(of: "://postgres@", with: "://\(role)@")
            #expect(configuration.source.url.contains(role))
            try await db.exec("SELECT pg_advisory_lock(4242)")
            let embedder = SlowEmbedder(delay: .milliseconds(400))
            try await withAgent(configuration, embedder: embedder, waitForLoad: false) { _, store in
                // The first chunk reaches the pipeline; only then does its second chunk fail.
                let deadline = ContinuousClock.now + .seconds(60)
                while !embedder.started, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
                try #require(embedder.started, "the first chunk was released to the pipeline")
                try await db.exec("SELECT pg_advisory_unlock(4242)")
                var job = try await store.jobs(entity: "item").first
                while job?.status != .failed, ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                    job = try await store.jobs(entity: "item").first
                }
                let failed = try #require(job)
                try #require(failed.status == .failed, "the job failed: \(failed.status)")
                #expect(failed.lastError?.contains("row 1001 cannot be read") == true, "\(failed.lastError ?? "")")
                // Watch the job until the first chunk's batch has landed (≈ 16 embedding calls of
                // 0.4 s) and, after that, long enough for the scheduler (it polls every 0.3 s and
                // retries a finished worker's job after 2 s) to have restarted it if it looked alive.
                let target = try await db.currentLSN()
                var seen: [JobRecord.Status] = []
                var landedAt: ContinuousClock.Instant?
                let watchDeadline = ContinuousClock.now + .seconds(90)
                while ContinuousClock.now < watchDeadline {
                    if let status = try await store.job(failed.id)?.status, seen.last != status { seen.append(status) }
                    if landedAt == nil, try await store.count(entity: "item") == 1_000,
                        let checkpoint = try await store.state("checkpoint").flatMap({ LSN($0) }), checkpoint >= target
                    {
                        landedAt = .now
                    }
                    if let landedAt, ContinuousClock.now - landedAt > .seconds(4) { break }
                    try await Task.sleep(for: .milliseconds(25))
                }
                #expect(landedAt != nil, "the first chunk was indexed")
                #expect(seen == [.failed], "the job must stay failed; it went through \(seen)")
                #expect(try await store.activeJobs().isEmpty)
            }
        }
        let admin = try await PostgresConnection.connect(server.url, logger: testLogger)
        try await admin.query("DROP ROLE IF EXISTS \(role)")
        await admin.close()
    }
}
