@testable import Capture
import Testing

@testable import Sync

/// Keys must be unique and NOT NULL (without a server: descriptions as discovery builds them).
@Suite struct KeyResolutionTests {
    func column(_ name: String, notNull: Bool) -> TableDescription.Column {
        .init(name: name, type: "text", typeOID: 25, notNull: notNull, isTextLike: true, isGenerated: false, isOrderable: true)
    }

    func describe(identity: String, primaryKey: [String] = [], unique: [TableDescription.UniqueIndex] = []) -> TableDescription {
        CatalogDiscovery.describe(
            table: TableName(schema: "public", name: "tags"),
            columns: [column("id", notNull: !primaryKey.isEmpty), column("code", notNull: true), column("email", notNull: false), column("label", notNull: false)],
            identity: identity, estimate: 0, primaryKey: primaryKey, identityIndex: [], uniqueIndexes: unique, published: false)
    }

    func resolve(_ table: TableDescription, key: [String]?) throws(SyncError) -> [String] {
        let entity = AgentConfiguration.Entity(name: "tag", table: table.table, content: "{{label}}", key: key)
        return try EntityResolver.resolve([entity], catalog: [table])[0].keyColumns
    }

    func message(_ table: TableDescription, key: [String]?) -> String {
        do {
            return "accepted \(try resolve(table, key: key))"
        } catch {
            return error.message
        }
    }

    @Test func fullIdentityUsesAUniqueNotNullIndexNotEveryColumn() {
        let byCode = describe(identity: "f", unique: [.init(name: "tags_email", columns: ["email"]), .init(name: "tags_code", columns: ["code"])])
        #expect(byCode.isSyncable && byCode.keyColumns == ["code"])
        #expect(byCode.candidateKeys == [["code"]])
        let withPrimaryKey = describe(identity: "f", primaryKey: ["id"], unique: [.init(name: "tags_code", columns: ["code"])])
        #expect(withPrimaryKey.keyColumns == ["id"] && withPrimaryKey.candidateKeys == [["id"], ["code"]])
    }

    @Test func fullIdentityWithoutAKeyIsRefusedWithTheFix() {
        let none = describe(identity: "f")
        #expect(!none.isSyncable && none.keyColumns.isEmpty)
        #expect(none.unsyncableReason?.contains("add a primary key") == true)
        #expect(message(none, key: nil).contains("entities.tag.table: public.tags cannot be synced: REPLICA IDENTITY FULL"))
        let nullable = describe(identity: "f", unique: [.init(name: "tags_email", columns: ["email"])])
        #expect(nullable.unsyncableReason?.contains("ALTER TABLE public.tags ALTER COLUMN email SET NOT NULL") == true, "\(nullable.unsyncableReason ?? "")")
    }

    @Test func configuredKeysMustBeUniqueAndNotNull() {
        let table = describe(identity: "f", primaryKey: ["id"], unique: [.init(name: "tags_email", columns: ["email"]), .init(name: "tags_code", columns: ["code"])])
        #expect(message(table, key: ["code"]) == "accepted [\"code\"]")
        #expect(message(table, key: ["id"]) == "accepted [\"id\"]")
        let nullable = message(table, key: ["email"])
        #expect(nullable.contains("entities.tag.key") && nullable.contains("may be NULL") && nullable.contains("ALTER TABLE public.tags ALTER COLUMN email SET NOT NULL"), "\(nullable)")
        let repeated = message(table, key: ["label"])
        #expect(repeated.contains("not unique") && repeated.contains("CREATE UNIQUE INDEX ON public.tags (label)") && repeated.contains("ALTER COLUMN label SET NOT NULL"), "\(repeated)")
        let superset = message(table, key: ["code", "label"])
        #expect(superset.contains("entities.tag.key"), "a key must be exactly a unique index's columns: \(superset)")
    }

    @Test func configuredKeysMustStillBeCarriedByDeletes() {
        let table = describe(identity: "d", primaryKey: ["id"], unique: [.init(name: "tags_code", columns: ["code"])])
        let message = message(table, key: ["code"])
        #expect(message.contains("carry only its replica identity (id)") && message.contains("REPLICA IDENTITY FULL"), "\(message)")
    }
}
