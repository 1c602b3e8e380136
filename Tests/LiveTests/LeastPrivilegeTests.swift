import Capture
import Foundation
import Indexing
import Postgres
import Testing

@testable import Sync

/// The agent loads and streams under the role `Deploy/least-privilege.sql` creates: REPLICATION,
/// SELECT on the configured tables, ownership of the publication, and nothing that writes.
@Suite struct LeastPrivilegeTests {
    static let script: String = {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return root.appendingPathComponent("Deploy/least-privilege.sql").path
    }()

    /// psql of the server's own installation, else Debian's.
    static func psql(_ server: LiveServer) -> String? {
        let candidates = [server.binDirectory.map { $0 + "/psql" }, "/usr/lib/postgresql/15/bin/psql", "/usr/bin/psql"].compactMap { $0 }
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    @Test(arguments: LiveServer.all)
    func theAgentRunsUnderTheLeastPrivilegeRole(server: LiveServer) async throws {
        let psql = try #require(Self.psql(server), "psql is needed to run the script")
        let role = "tm_lp_" + UUID().uuidString.prefix(8).lowercased()
        try await withDatabase(on: server) { db in
            try await db.exec("""
                CREATE TABLE products (id int PRIMARY KEY, name text NOT NULL, description text);
                CREATE TABLE secrets (id int PRIMARY KEY, value text);
                INSERT INTO products SELECT g, 'product ' || g, 'text ' || g FROM generate_series(1, 500) g;
                """)
            let process = Process()
            process.executableURL = URL(fileURLWithPath: psql)
            process.arguments = [db.url, "-v", "role=\(role)", "-v", "tables=public.products", "-v", "schemas=public", "-f", Self.script]
            let errors = Pipe()
            process.standardError = errors
            process.standardOutput = FileHandle.nullDevice
            try process.run()
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            process.waitUntilExit()
            try #require(process.terminationStatus == 0, "the script failed: \(message)")

            let roleURL = db.url.replacingOccurrences(of: "://postgres@", with: "://\(role)@")
            // Nothing but reading: no writes, no other tables, no superuser.
            let connection = try await PostgresConnection.connect(roleURL, logger: testLogger)
            await #expect(throws: (any Error).self) { try await connection.query("INSERT INTO products VALUES (9999, 'x', 'y')") }
            await #expect(throws: (any Error).self) { try await connection.query("SELECT * FROM secrets") }
            #expect(try await connection.query("SELECT rolsuper::text, rolreplication::text FROM pg_roles WHERE rolname = current_user").rows.first == ["false", "true"])
            await connection.close()

            var configuration = db.agentConfiguration(entities: [
                .init(name: "product", table: TableName(schema: "public", name: "products"), content: "{{name}}\n{{description}}")
            ])
            configuration.source.url = roleURL
            try await withAgent(configuration) { _, store in
                #expect(try await store.count(entity: "product") == 500)
                try await db.exec("INSERT INTO products VALUES (501, 'late', 'row'); UPDATE products SET name = 'renamed' WHERE id = 1; DELETE FROM products WHERE id = 2;")
                try await waitForCheckpoint(store, try await db.currentLSN())
                #expect(try await store.count(entity: "product") == 500)
                #expect(try await store.document(entity: "product", id: "1")?.content.hasPrefix("renamed") == true)
            }
            let owner = try await db.scalar("SELECT pg_get_userbyid(pubowner) FROM pg_publication WHERE pubname = 'tidemark'")
            #expect(owner == role)
        }
        let admin = try await PostgresConnection.connect(server.url, logger: testLogger)
        _ = try? await admin.query("DROP ROLE IF EXISTS \(role)")
        await admin.close()
    }
}
