@testable import Capture
import Foundation
import Testing

@testable import Sync

@Suite struct StarterConfigurationTests {
    func column(_ name: String, _ type: String, text: Bool = false, notNull: Bool = false, generated: Bool = false) -> TableDescription.Column {
        .init(name: name, type: type, typeOID: 0, notNull: notNull, isTextLike: text, isGenerated: generated, isOrderable: true)
    }

    var tables: [TableDescription] {
        let products = TableDescription(
            table: TableName(schema: "public", name: "products"),
            columns: [
                column("id", "integer", notNull: true), column("name", "text", text: true), column("description", "text", text: true),
                column("price", "numeric(10,2)"), column("category_id", "integer"), column("created_at", "timestamp with time zone"),
                column("tags", "text[]"), column("search", "tsvector", generated: true),
            ],
            primaryKey: ["id"], keyColumns: ["id"], replicaIdentity: "default", estimatedRows: 1200, isPublished: false,
            unsyncableReason: nil)
        let counters = TableDescription(
            table: TableName(schema: "stats", name: "page.views"),
            columns: [column("day", "date", notNull: true), column("views", "bigint")],
            primaryKey: ["day"], keyColumns: ["day"], replicaIdentity: "default", estimatedRows: 30, isPublished: false, unsyncableReason: nil)
        let audit = TableDescription(
            table: TableName(schema: "public", name: "audit_log"), columns: [column("message", "text", text: true)], primaryKey: [],
            keyColumns: [], replicaIdentity: "default", estimatedRows: 5, isPublished: false,
            unsyncableReason: "no primary key and REPLICA IDENTITY DEFAULT. Fix: add a primary key")
        return [products, counters, audit]
    }

    @Test func theStarterLoadsAndMapsTheTables() throws {
        let findings = [SourceReadiness.Finding(check: "wal_level", severity: .blocking, message: "wal_level is 'replica'; set wal_level = logical")]
        let text = StarterConfiguration(configuration: .init(sourceURL: "postgres://app:hunter2@db.internal:5432/shop"))
            .render(tables: tables, findings: findings)
        #expect(!text.contains("hunter2"), "the password never reaches the file")
        #expect(text.contains("MUST FIX: wal_level is 'replica'"))
        #expect(text.contains("public.audit_log: no primary key"))
        let configuration = try ConfigurationLoader(environment: [:]).parse(text)
        #expect(configuration.source.url == "postgres://app@db.internal:5432/shop")
        #expect(configuration.entities.map(\.name) == ["products", "stats_page_views"])
        let products = try #require(configuration.entities.first)
        #expect(products.content == "{{name}}\n{{description}}")
        #expect(products.metadata == ["price", "category_id", "created_at"])
        let views = configuration.entities[1]
        #expect(views.table == TableName(schema: "stats", name: "page.views"))
        #expect(views.content == "day: {{day}}\nviews: {{views}}")
        #expect(configuration.api.listen == "127.0.0.1:7601")
    }

    @Test func nothingSyncableStillLoadsAsAComment() {
        let text = StarterConfiguration(configuration: .init(sourceURL: "host=db dbname=shop password=x")).render(tables: [tables[2]], findings: [])
        #expect(text.contains("No table can be synced yet"))
        #expect(!text.contains("password=x"))
        // No entities: the loader says what to add.
        #expect(throws: SyncError.self) { try ConfigurationLoader(environment: [:]).parse(text) }
    }
}
