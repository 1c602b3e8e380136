import Capture
import Foundation
import Postgres
import Testing

@Suite struct PostgresLiveTests {
    @Test(arguments: LiveServer.all)
    func boundParametersAndTextResults(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            let hostile = "'); DROP TABLE x; --"
            let result = try await db.connection.query("SELECT $1::text AS echo, $2::int + 1 AS next, $3::text IS NULL AS missing", [hostile, "41", nil])
            #expect(result.columns.map(\.name) == ["echo", "next", "missing"])
            #expect(result.rows == [[hostile, "42", "t"]])
            #expect(result.columns[1].typeOID == 23)
        }
    }

    @Test(arguments: LiveServer.all)
    func serverErrorsCarrySQLStateAndMessage(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            let error = await #expect(throws: PostgresError.self) { try await db.connection.query("SELECT * FROM no_such_table") }
            #expect(error?.code == .queryFailed)
            #expect(error?.sqlState == "42P01")
            #expect(error?.message.contains("no_such_table") == true)
            // The connection stays usable after a statement error.
            let one = try await db.scalar("SELECT 1")
            #expect(one == "1")
        }
    }

    /// A cancelled task cancels its statement on the server (an agent shutting down must not wait
    /// out a long index build); the session stays usable, and a statement whose task was cancelled
    /// before it ran is never sent.
    @Test(arguments: LiveServer.all)
    func cancellingTheTaskCancelsTheStatementOnTheServer(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            // A session of its own: `db.connection` watches it meanwhile.
            let connection = try await PostgresConnection.connect(db.url, logger: testLogger)
            defer { Task { await connection.close() } }
            let started = ContinuousClock.now
            let sleeper = Task { try await connection.cancellableQuery("SELECT pg_sleep(60)") }
            // Wait until the statement runs on the server, then cancel the task.
            let deadline = ContinuousClock.now + .seconds(20)
            while try await db.scalar("SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)' AND state = 'active'") != "1" {
                try #require(ContinuousClock.now < deadline, "the statement never started")
                try await Task.sleep(for: .milliseconds(20))
            }
            sleeper.cancel()
            await #expect(throws: CancellationError.self) { try await sleeper.value }
            #expect(ContinuousClock.now - started < .seconds(30), "waited out the statement")
            #expect(try await connection.query("SELECT 3").rows == [["3"]])
            // Cancelled before it runs: not sent at all.
            let early = Task {
                withUnsafeCurrentTask { $0?.cancel() }
                return try await connection.cancellableQuery("CREATE TABLE never_made (id int)")
            }
            await #expect(throws: CancellationError.self) { try await early.value }
            #expect(try await db.scalar("SELECT to_regclass('never_made') IS NULL") == "t")
        }
    }

    @Test(arguments: LiveServer.all)
    func copyOutStreamsInBoundedPieces(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await db.exec("CREATE TABLE big AS SELECT g AS id, repeat('x', 100) AS pad FROM generate_series(1, 50000) g")
            try await db.connection.startCopyOut("COPY (SELECT id, pad FROM big ORDER BY id) TO STDOUT")
            var pieces = 0
            var lines = 0
            var largest = 0
            while let chunk = try await db.connection.readCopyOut(maxBytes: 64 * 1024) {
                pieces += 1
                largest = max(largest, chunk.count)
                lines += chunk.reduce(0) { $0 + ($1 == UInt8(ascii: "\n") ? 1 : 0) }
                #expect(chunk.last == UInt8(ascii: "\n"), "pieces hold whole rows")
            }
            #expect(lines == 50_000)
            #expect(pieces > 50)
            #expect(largest < 64 * 1024 + 200)
            // A failing COPY reports the server's error.
            try await db.connection.startCopyOut("COPY (SELECT 1 / (id - 25000) FROM big ORDER BY id) TO STDOUT")
            let error = await #expect(throws: PostgresError.self) {
                while try await db.connection.readCopyOut() != nil {}
            }
            #expect(error?.sqlState == "22012")
            let two = try await db.scalar("SELECT 2")
            #expect(two == "2")
        }
    }

    @Test(arguments: LiveServer.all)
    func replicationConnectionAcceptsOnlySimpleQueries(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            let replication = try await PostgresConnection.connect(db.url, kind: .logicalReplication, logger: testLogger)
            let system = try await replication.simpleQuery("IDENTIFY_SYSTEM")
            #expect(system.columns.map(\.name).contains("xlogpos"))
            #expect(LSN(system.value(0, "xlogpos") ?? "") != nil)
            await #expect(throws: PostgresError.self) { try await replication.query("SELECT $1::int", ["1"]) }
            await replication.close()
            let closed = await #expect(throws: PostgresError.self) { try await replication.simpleQuery("SELECT 1") }
            #expect(closed?.code == .closed)
        }
    }

    @Test(arguments: LiveServer.first)
    func terminatedBackendIsReportedAsConnectionLost(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            let victim = try await PostgresConnection.connect(db.url, logger: testLogger)
            let pid = await victim.backendPID()
            _ = try await db.scalar("SELECT pg_terminate_backend($1)::text", [String(pid)])
            try await Task.sleep(for: .milliseconds(200))
            let error = await #expect(throws: PostgresError.self) { try await victim.query("SELECT 1") }
            #expect(error?.code == .connectionLost)
        }
    }
}

@Suite struct DiscoveryLiveTests {
    @Test(arguments: LiveServer.all)
    func discoveryNamesKeysAndReasons(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await db.exec("""
                CREATE SCHEMA shop;
                CREATE TABLE shop.products (id bigint PRIMARY KEY, name text NOT NULL, description varchar(500), price numeric);
                CREATE TABLE shop.order_lines (order_id int, line int, note text, PRIMARY KEY (order_id, line));
                CREATE TABLE public.audit_log (at timestamptz, message text);
                CREATE TABLE public.events (payload json, n int);
                ALTER TABLE public.events REPLICA IDENTITY FULL;
                CREATE TABLE public.by_index (code text NOT NULL, body text);
                CREATE UNIQUE INDEX by_index_code ON public.by_index (code);
                ALTER TABLE public.by_index REPLICA IDENTITY USING INDEX by_index_code;
                INSERT INTO shop.products SELECT g, 'p' || g, 'd', 1 FROM generate_series(1, 500) g;
                ANALYZE shop.products;
                CREATE PUBLICATION pub FOR TABLE shop.products;
                """)
            let discovery = CatalogDiscovery(configuration: .init(publication: "pub"), logger: testLogger)
            let tables = try await discovery.discover(on: db.connection)
            let byName = Dictionary(uniqueKeysWithValues: tables.map { ($0.table.description, $0) })
            #expect(tables.map(\.table.description) == ["public.audit_log", "public.by_index", "public.events", "shop.order_lines", "shop.products"])

            let products = try #require(byName["shop.products"])
            #expect(products.isSyncable && products.keyColumns == ["id"] && products.isPublished)
            #expect(products.estimatedRows == 500)
            #expect(products.columns.filter(\.isTextLike).map(\.name) == ["name", "description"])
            #expect(products.columns.first { $0.name == "description" }?.type == "character varying(500)")

            #expect(byName["shop.order_lines"]?.keyColumns == ["order_id", "line"])
            #expect(byName["public.by_index"]?.keyColumns == ["code"])
            #expect(byName["public.by_index"]?.replicaIdentity == "index")

            let audit = try #require(byName["public.audit_log"])
            #expect(!audit.isSyncable && !audit.isPublished)
            #expect(audit.unsyncableReason?.contains("no primary key") == true)
            #expect(audit.unsyncableReason?.contains("REPLICA IDENTITY FULL") == true, "the reason names the fix")

            // Under FULL, every column is no key (NULLs, repeats, and json has no ordering).
            let events = try #require(byName["public.events"])
            #expect(events.unsyncableReason?.contains("REPLICA IDENTITY FULL without a primary key") == true, "\(events.unsyncableReason ?? "")")

            let onlyShop = try await CatalogDiscovery(configuration: .init(schemas: ["shop"]), logger: testLogger).discover(on: db.connection)
            #expect(onlyShop.map(\.table.name) == ["order_lines", "products"])
        }
    }

    @Test(arguments: LiveServer.first)
    func discoverCommandPrintsTheReason(server: LiveServer) async throws {
        let binary = try #require(TidemarkBinary.path, "build the tidemark executable first (swift build)")
        try await withDatabase(on: server) { db in
            try await db.exec("CREATE TABLE keyless (note text); CREATE TABLE fine (id int PRIMARY KEY, note text)")
            let table = try await TidemarkBinary.run(binary, ["discover", "--source", db.url])
            #expect(table.status == 0)
            #expect(table.output.contains("public.fine"))
            #expect(table.output.contains("public.keyless: no primary key"))
            let json = try await TidemarkBinary.run(binary, ["discover", "--source", db.url, "--json"])
            let decoded = try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [[String: Any]]
            let keyless = decoded?.first { ($0["table"] as? [String: Any])?["name"] as? String == "keyless" }
            #expect((keyless?["unsyncable_reason"] as? String)?.contains("no primary key") == true)
            let unreachable = try await TidemarkBinary.run(binary, ["discover", "--source", "postgres://u:hunter2@127.0.0.1:1/x"])
            #expect(unreachable.status == 1)
            #expect(unreachable.error.contains("cannot connect"))
            #expect(!unreachable.error.contains("hunter2"))
        }
    }
}

/// The built `tidemark` executable, next to the test bundle.
enum TidemarkBinary {
    static let path: String? = {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = directory.appendingPathComponent("tidemark").path
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            directory = directory.deletingLastPathComponent()
        }
        return nil
    }()

    /// The tests' environment, with the agent's API on a free port unless a test sets one: tests
    /// run side by side, and a command must never reach another test's agent at the default port.
    static var environment: [String: String] {
        var environment = ProcessInfo.processInfo.environment
        if environment["TIDEMARK_API_LISTEN"] == nil { environment["TIDEMARK_API_LISTEN"] = "127.0.0.1:0" }
        return environment
    }

    /// Runs a `tidemark` command to its end and returns its exit status and output.
    ///
    /// Waits by polling, never by blocking a thread of the cooperative pool (the agent of the same
    /// test runs there), and at most `timeout`: a command still running then is killed and the test
    /// gets an issue naming it, instead of the whole run hanging.
    static func run(
        _ binary: String, _ arguments: [String], environment: [String: String]? = nil, timeout: Duration = .seconds(180),
        sourceLocation: SourceLocation = #_sourceLocation
    ) async throws -> (status: Int32, output: String, error: String) {
        let base = NSTemporaryDirectory() + "tidemark-command-\(UUID().uuidString)"
        let outPath = base + ".out"
        let errPath = base + ".err"
        FileManager.default.createFile(atPath: outPath, contents: nil)
        FileManager.default.createFile(atPath: errPath, contents: nil)
        defer {
            try? FileManager.default.removeItem(atPath: outPath)
            try? FileManager.default.removeItem(atPath: errPath)
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.environment = environment ?? TidemarkBinary.environment
        process.standardInput = FileHandle.nullDevice
        let out = try FileHandle(forWritingTo: URL(fileURLWithPath: outPath))
        let err = try FileHandle(forWritingTo: URL(fileURLWithPath: errPath))
        process.standardOutput = out
        process.standardError = err
        try process.run()
        try? out.close()
        try? err.close()
        if await !process.exited(within: timeout) {
            Issue.record("`tidemark \(arguments.joined(separator: " "))` did not end within \(timeout); killed", sourceLocation: sourceLocation)
            _ = Glibc.kill(process.processIdentifier, SIGKILL)
            _ = await process.exited(within: .seconds(60))
        }
        let output = (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? ""
        let error = (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? ""
        return (process.terminationStatus, output, error)
    }
}
