import Capture
import Foundation
import Postgres
import Testing

@Suite(.serialized) struct ReplicationTests {
    @Test(arguments: LiveServer.all)
    func insertUpdateDeleteTruncateArriveInCommitOrder(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await db.exec("CREATE TABLE items (id bigint PRIMARY KEY, name text NOT NULL, price numeric)")
            let start = try await db.prepareReplication(tables: ["items"])
            try await withReader(db, startLSN: start) { _, log in
                try await db.exec("INSERT INTO items VALUES (1, 'lamp', 10.50), (2, 'desk', NULL)")
                try await db.exec("UPDATE items SET name = 'desk lamp' WHERE id = 1")
                try await db.exec("UPDATE items SET id = 3 WHERE id = 2")
                try await db.exec("DELETE FROM items WHERE id = 1")
                try await db.exec("TRUNCATE items")
                try await log.wait(for: "six changes") { $0.changes.count >= 6 }
                let changes = log.changes
                #expect(changes.map(\.operation) == [.insert, .insert, .update, .update, .delete, .truncate])
                #expect(changes.map(\.keyText) == [["1"], ["2"], ["1"], ["3"], ["1"], []])
                #expect(changes[0].value("name") == .text("lamp"))
                #expect(changes[0].value("price") == .text("10.50"))
                #expect(changes[1].value("price") == .null)
                #expect(changes[2].value("name") == .text("desk lamp"))
                #expect(changes[2].oldKey == nil)
                #expect(changes[3].oldKey == [.text("2")], "a key change reports the old key")
                #expect(changes[4].oldKey == [.text("1")])
                #expect(changes[5].table == TableName(schema: "public", name: "items"))
                #expect(changes.allSatisfy { $0.schema.keyColumns == ["id"] })
                // Commit order: LSNs strictly increase from transaction to transaction.
                let ends = log.committedEnds
                #expect(ends == ends.sorted() && Set(ends).count == ends.count)
                #expect(changes.allSatisfy { $0.commitTime > 0 })
            }
        }
    }

    @Test(arguments: LiveServer.all)
    func severalTablesInOneTransactionAndRollbacksNeverDelivered(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await db.exec("""
                CREATE TABLE orders (id int PRIMARY KEY, customer text);
                CREATE TABLE order_lines (order_id int, line int, sku text, PRIMARY KEY (order_id, line));
                """)
            let start = try await db.prepareReplication(tables: ["orders", "order_lines"])
            try await withReader(db, startLSN: start) { _, log in
                try await db.exec("""
                    BEGIN;
                    INSERT INTO orders VALUES (1, 'ada');
                    INSERT INTO order_lines VALUES (1, 1, 'A-1'), (1, 2, 'B-2');
                    COMMIT;
                    """)
                try await db.exec("BEGIN; INSERT INTO orders VALUES (2, 'ghost'); INSERT INTO order_lines VALUES (2, 1, 'X'); ROLLBACK;")
                try await db.exec("""
                    BEGIN;
                    INSERT INTO orders VALUES (3, 'bob');
                    SAVEPOINT s; INSERT INTO orders VALUES (4, 'undone'); ROLLBACK TO SAVEPOINT s;
                    UPDATE order_lines SET sku = 'A-9' WHERE order_id = 1 AND line = 1;
                    COMMIT;
                    """)
                try await log.wait(for: "two transactions") { $0.committedEnds.count >= 2 }
                try await Task.sleep(for: .milliseconds(300))
                let pieces = log.pieces
                #expect(pieces.count == 2)
                #expect(pieces[0].changes.map(\.table.name) == ["orders", "order_lines", "order_lines"])
                #expect(pieces[0].changes.map(\.keyText) == [["1"], ["1", "1"], ["1", "2"]], "composite keys in key order")
                #expect(Set(pieces[0].changes.map(\.xid)).count == 1)
                #expect(pieces[1].changes.map(\.keyText) == [["3"], ["1", "1"]])
                let orderKeys = log.changes.filter { $0.table.name == "orders" }.map(\.keyText)
                #expect(orderKeys == [["1"], ["3"]], "rolled-back rows and savepoints must never appear")
                #expect(!log.changes.contains { $0.value("sku") == .text("X") })
            }
        }
    }

    @Test(arguments: LiveServer.all)
    func unchangedToastIsReportedAsUnchanged(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await db.exec("""
                CREATE TABLE docs (id int PRIMARY KEY, title text, body text);
                ALTER TABLE docs ALTER COLUMN body SET STORAGE EXTERNAL;
                CREATE TABLE docs_full (id int PRIMARY KEY, title text, body text);
                ALTER TABLE docs_full ALTER COLUMN body SET STORAGE EXTERNAL;
                ALTER TABLE docs_full REPLICA IDENTITY FULL;
                """)
            let start = try await db.prepareReplication(tables: ["docs", "docs_full"])
            let big = String(repeating: "lorem ipsum ", count: 2_000)
            try await withReader(db, startLSN: start) { _, log in
                for table in ["docs", "docs_full"] {
                    try await db.connection.query("INSERT INTO \(table) VALUES (1, 'first', $1)", [big])
                    try await db.exec("UPDATE \(table) SET title = 'second' WHERE id = 1")
                }
                try await log.wait(for: "four changes") { $0.changes.count >= 4 }
                let changes = log.changes
                #expect(changes[0].value("body") == .text(big))
                #expect(changes[1].value("title") == .text("second"))
                #expect(changes[1].value("body") == .unchangedToast, "not empty, not null: unchanged")
                // Under REPLICA IDENTITY FULL the old row carries the value, and the reader fills it in.
                #expect(changes[3].value("body") == .text(big))
                #expect(changes[3].oldValues?[2] == .text(big))
            }
        }
    }

    @Test(arguments: LiveServer.all)
    func replicaIdentityFullAndDefaultDeletes(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await db.exec("""
                CREATE TABLE d (id int PRIMARY KEY, note text);
                CREATE TABLE f (id int PRIMARY KEY, note text);
                ALTER TABLE f REPLICA IDENTITY FULL;
                CREATE TABLE keyless (note text, qty int);
                ALTER TABLE keyless REPLICA IDENTITY FULL;
                INSERT INTO d VALUES (1, 'x'); INSERT INTO f VALUES (1, 'x'); INSERT INTO keyless VALUES ('y', 2);
                """)
            let start = try await db.prepareReplication(tables: ["d", "f", "keyless"])
            try await withReader(db, startLSN: start, configure: {
                $0.assembler.keyColumns = [TableName(schema: "public", name: "f"): ["id"]]
            }) { _, log in
                try await db.exec("UPDATE d SET note = 'x2'; UPDATE f SET note = 'x2'; DELETE FROM d; DELETE FROM f; DELETE FROM keyless;")
                try await log.wait(for: "five changes") { $0.changes.count >= 5 }
                let changes = log.changes
                #expect(changes[0].oldValues == nil, "DEFAULT: an update carries no old row")
                #expect(changes[1].oldValues == [.text("1"), .text("x")], "FULL: the whole old row")
                #expect(changes[2].operation == .delete && changes[2].keyText == ["1"])
                #expect(changes[2].oldValues == nil)
                #expect(changes[3].operation == .delete && changes[3].keyText == ["1"], "configured key under FULL")
                #expect(changes[3].oldValues == [.text("1"), .text("x2")])
                #expect(changes[4].keyText == ["y", "2"], "keyless FULL table: the whole row identifies it")
            }
        }
    }

    @Test(arguments: LiveServer.all)
    func columnsAddedAndDroppedMidStream(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await db.exec("CREATE TABLE evolving (id int PRIMARY KEY, a text)")
            let start = try await db.prepareReplication(tables: ["evolving"])
            try await withReader(db, startLSN: start) { _, log in
                try await db.exec("INSERT INTO evolving VALUES (1, 'one')")
                try await db.exec("ALTER TABLE evolving ADD COLUMN b int DEFAULT 7")
                try await db.exec("INSERT INTO evolving VALUES (2, 'two', 8)")
                try await db.exec("ALTER TABLE evolving DROP COLUMN a")
                try await db.exec("INSERT INTO evolving VALUES (3, 9)")
                try await db.exec("UPDATE evolving SET b = 10 WHERE id = 1")
                try await log.wait(for: "four changes") { $0.changes.count >= 4 }
                let changes = log.changes
                #expect(changes[0].schema.columns.map(\.name) == ["id", "a"])
                #expect(changes[1].schema.columns.map(\.name) == ["id", "a", "b"])
                #expect(changes[1].value("b") == .text("8"))
                #expect(changes[2].schema.columns.map(\.name) == ["id", "b"])
                #expect(changes[2].value("b") == .text("9"))
                #expect(changes[3].newValues == [.text("1"), .text("10")])
            }
        }
    }

    @Test(arguments: LiveServer.all)
    func largeTransactionIsStreamedAndSpilledWithBoundedPieces(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await db.exec("CREATE TABLE bulk (id int PRIMARY KEY, payload text)")
            let start = try await db.prepareReplication(tables: ["bulk"])
            let rows = 200_000
            // A small logical_decoding_work_mem makes the walsender stream the transaction (protocol 2).
            let url = db.url + (db.url.contains("?") ? "&" : "?") + "options=-c%20logical_decoding_work_mem%3D64kB"
            let streamed = try await TestDatabase.countStreamed(db) {
                try await withReader(db, startLSN: start, configure: {
                    $0.connectionString = url
                    $0.assembler.maxChangesInMemory = 5_000
                    $0.assembler.pieceSize = 2_000
                }) { reader, log in
                    try await db.exec("INSERT INTO bulk SELECT g, md5(g::text) FROM generate_series(1, \(rows)) g")
                    try await db.exec("BEGIN; INSERT INTO bulk VALUES (0, 'aborted'); SELECT count(*) FROM bulk; ROLLBACK;")
                    try await log.wait(for: "\(rows) rows", timeout: .seconds(120)) { $0.changes.count >= rows }
                    let pieces = log.pieces
                    #expect(pieces.allSatisfy { $0.changes.count <= 2_000 }, "every piece is bounded")
                    #expect(pieces.count == rows / 2_000)
                    #expect(pieces.filter(\.isFinal).count == 1)
                    let ids = Set(log.changes.map { $0.keyText[0] ?? "" })
                    #expect(ids.count == rows)
                    // The commit's end, or a later idle position the consumer confirmed after it.
                    #expect(reader.confirmed >= pieces.last?.endLSN ?? .zero)
                }
            }
            #expect(streamed > 0, "the transaction went through the streaming protocol")
        }
    }

    @Test(arguments: LiveServer.all)
    func streamedTransactionWithManySubtransactionsDeliversSurvivorsOnceAndAbortedNever(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await db.exec("CREATE TABLE loop_rows (id int PRIMARY KEY, payload text)")
            let start = try await db.prepareReplication(tables: ["loop_rows"])
            // Every iteration of the loop runs in its own subtransaction (the EXCEPTION block); every
            // tenth one raises, and every hundredth writes more than logical_decoding_work_mem before
            // it raises, so the walsender streams its changes before it sees the abort (a Stream
            // Abort of that subtransaction). Every seventh aborts a nested block but keeps its row.
            let iterations = 20_000
            let url = db.url + (db.url.contains("?") ? "&" : "?") + "options=-c%20logical_decoding_work_mem%3D64kB"
            let streamed = try await TestDatabase.countStreamed(db) {
                try await withReader(db, startLSN: start, configure: {
                    $0.connectionString = url
                    $0.assembler.maxChangesInMemory = 2_000
                }) { _, log in
                    try await db.exec("""
                        DO $$
                        BEGIN
                          FOR i IN 1..\(iterations) LOOP
                            BEGIN
                              INSERT INTO loop_rows VALUES (i, 'kept');
                              IF i % 7 = 0 THEN
                                BEGIN
                                  INSERT INTO loop_rows VALUES (-i, 'nested, aborted');
                                  RAISE EXCEPTION 'undo nested';
                                EXCEPTION WHEN raise_exception THEN NULL;
                                END;
                              END IF;
                              IF i % 100 = 0 THEN
                                INSERT INTO loop_rows SELECT 1000000 + 1000 * i + g, repeat('x', 1000) FROM generate_series(1, 100) g;
                              END IF;
                              IF i % 10 = 0 THEN
                                RAISE EXCEPTION 'undo iteration';
                              END IF;
                            EXCEPTION WHEN raise_exception THEN NULL;
                            END;
                          END LOOP;
                        END $$;
                        """)
                    try await db.exec("INSERT INTO loop_rows VALUES (0, 'after')")
                    try await log.wait(for: "the loop's transaction and the next", timeout: .seconds(300)) { $0.committedEnds.count >= 2 }
                    let ids = log.changes.map { Int($0.keyText[0] ?? "") ?? Int.min }
                    let expected = (1...iterations).filter { $0 % 10 != 0 } + [0]
                    #expect(ids.count == expected.count, "\(ids.count) changes, expected \(expected.count)")
                    #expect(ids == expected, "every surviving row once, in order; no aborted row")
                    #expect(!ids.contains { $0 < 0 || $0 >= 1_000_000 }, "rows of aborted subtransactions never arrive")
                }
            }
            #expect(streamed > 0, "the transaction went through the streaming protocol")
        }
    }

    @Test(arguments: LiveServer.all)
    func walsenderKilledMidStreamResumesWithNothingLostOrRepeated(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await db.exec("CREATE TABLE ticks (id int PRIMARY KEY)")
            let start = try await db.prepareReplication(tables: ["ticks"])
            let total = 600
            var lastConfirmed = LSN.zero
            try await withReader(db, startLSN: start) { reader, log in
                for id in 1...total {
                    try await db.exec("INSERT INTO ticks VALUES (\(id))")
                    if id % 200 == 0 {
                        try await log.wait(for: "row \(id)") { $0.changes.count >= id - 50 }
                        let killed = try await db.scalar(
                            "SELECT count(pg_terminate_backend(active_pid)) FROM pg_replication_slots WHERE slot_name = '\(db.name)' AND active_pid IS NOT NULL")
                        #expect(killed == "1")
                    }
                }
                try await log.wait(for: "all rows") { $0.changes.count >= total }
                try await Task.sleep(for: .milliseconds(300))
                let ids = log.changes.map { Int($0.keyText[0] ?? "") ?? -1 }
                #expect(ids == Array(1...total), "every row once, in commit order")
                #expect(reader.statistics.reconnects >= 3)
                lastConfirmed = reader.confirmed
            }
            // The slot has the confirmed position; a new reader from there delivers only what follows.
            try await withReader(db) { _, log in
                try await db.exec("INSERT INTO ticks VALUES (\(total + 1))")
                try await log.wait(for: "the new row") { !$0.changes.isEmpty }
                try await Task.sleep(for: .milliseconds(300))
                #expect(log.changes.map(\.keyText) == [[String(total + 1)]])
                #expect(log.pieces.allSatisfy { $0.commitLSN >= lastConfirmed })
            }
        }
    }

    @Test(arguments: LiveServer.all)
    func unconfirmedWorkIsDeliveredAgainAfterRestartButConfirmedWorkIsNot(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await db.exec("CREATE TABLE t (id int PRIMARY KEY)")
            let start = try await db.prepareReplication(tables: ["t"])
            // First run confirms only the first transaction.
            try await withReader(db, startLSN: start, confirm: false) { reader, log in
                try await db.exec("INSERT INTO t VALUES (1)")
                try await db.exec("INSERT INTO t VALUES (2)")
                try await log.wait(for: "two rows") { $0.changes.count >= 2 }
                reader.confirm(log.committedEnds[0])
            }
            try await withReader(db) { _, log in
                try await log.wait(for: "the unconfirmed row") { !$0.changes.isEmpty }
                try await Task.sleep(for: .milliseconds(300))
                #expect(log.changes.map(\.keyText) == [["2"]])
            }
        }
    }

    @Test(arguments: LiveServer.all)
    func idleDatabaseStillAdvancesTheSlotAndMessagesArrive(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await db.exec("CREATE TABLE watched (id int PRIMARY KEY); CREATE TABLE unwatched (id int)")
            let start = try await db.prepareReplication(tables: ["watched"])
            try await withReader(db, startLSN: start, configure: { $0.statusInterval = .milliseconds(200) }) { _, log in
                // WAL the slot does not care about: only keepalives arrive for it.
                try await db.exec("INSERT INTO unwatched SELECT generate_series(1, 1000)")
                let target = try await db.currentLSN()
                _ = try await db.scalar("SELECT pg_logical_emit_message(false, 'tidemark.heartbeat', 'beat')::text")
                try await log.wait(for: "the heartbeat") { !$0.messages.isEmpty }
                #expect(log.messages.first?.prefix == "tidemark.heartbeat")
                #expect(log.messages.first?.content == Array("beat".utf8))
                let deadline = ContinuousClock.now + .seconds(20)
                var confirmed = LSN.zero
                while ContinuousClock.now < deadline {
                    confirmed = LSN(try await db.scalar("SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = '\(db.name)'") ?? "") ?? .zero
                    if confirmed >= target { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                #expect(confirmed >= target, "the slot advanced past unrelated WAL")
            }
        }
    }

    @Test(arguments: LiveServer.first)
    func missingSlotIsAClearErrorNotARetryLoop(server: LiveServer) async throws {
        try await withDatabase(on: server) { db in
            try await db.exec("CREATE TABLE t (id int PRIMARY KEY)")
            _ = try await db.prepareReplication(slot: "present", tables: ["t"])
            let reader = ReplicationReader(
                configuration: .init(connectionString: db.url, slotName: "absent", publicationNames: ["tidemark"]), logger: testLogger)
            let error = await #expect(throws: CaptureError.self) { try await reader.run { _ in } }
            #expect(reader.statistics.reconnects == 0, "a missing slot is not retried")
            #expect(error?.code == .replicationSetup)
            #expect(error?.message.contains("absent") == true)
        }
    }
}

extension TestDatabase {
    /// Runs `body` and returns how many transactions the server streamed for the slot meanwhile
    /// (`pg_stat_replication_slots.stream_txns`, PostgreSQL 14+).
    static func countStreamed(_ db: TestDatabase, _ body: () async throws -> Void) async throws -> Int {
        try await body()
        for _ in 0..<50 {
            let count = Int(try await db.scalar("SELECT stream_txns::text FROM pg_stat_replication_slots WHERE slot_name = '\(db.name)'") ?? "0") ?? 0
            if count > 0 { return count }
            try await Task.sleep(for: .milliseconds(100))
        }
        return 0
    }
}
