import Testing

@testable import Postgres

@Suite struct PostgresTypesTests {
    @Test func lsnRoundTripsAndOrders() throws {
        let lsn = try #require(LSN("16/B374D848"))
        #expect(lsn.rawValue == 0x16_B374_D848)
        #expect(lsn.description == "16/B374D848")
        #expect(LSN("0/0") == .zero)
        #expect(LSN("0/1")! < LSN("1/0")!)
        #expect(LSN("FFFFFFFF/FFFFFFFF")?.rawValue == UInt64.max)
        for bad in ["", "16", "16/", "/1", "G/1", "1/2/3", "123456789/0", " 1/2"] {
            #expect(LSN(bad) == nil, "\(bad) should not parse")
        }
        #expect(throws: PostgresError.self) { try LSN.parse("nope") }
        #expect(LSN(100).distance(from: LSN(40)) == 60)
        #expect(LSN(40).distance(from: LSN(100)) == 0)
    }

    @Test func passwordsAreRedacted() {
        #expect(ConnectionString.redacted("postgres://app:s3cret@db:5432/shop") == "postgres://app:***@db:5432/shop")
        #expect(ConnectionString.redacted("postgres://app@db/shop") == "postgres://app@db/shop")
        #expect(ConnectionString.redacted("host=db password=s3cret user=app") == "host=db password=*** user=app")
        #expect(ConnectionString.redacted("host=db password='a b\\' c' user=app") == "host=db password=*** user=app")
        #expect(ConnectionString.redacted("postgres://db/shop?user=a&password=s3cret&sslmode=require")
            == "postgres://db/shop?user=a&password=***&sslmode=require")
        #expect(!ConnectionString.redacted("postgresql://u:p%40ss@h/d").contains("p%40ss"))
    }

    @Test func quoting() {
        #expect(PostgresConnection.quoteIdentifier("a\"b") == "\"a\"\"b\"")
        #expect(PostgresConnection.quoteLiteral("it's") == "'it''s'")
        #expect(PostgresConnection.quoteLiteral("a\\b") == "E'a\\\\b'")
    }

    @Test func unreachableServerGivesAClearErrorWithoutThePassword() async {
        let error = await #expect(throws: PostgresError.self) {
            _ = try await PostgresConnection.connect(
                "postgres://app:topsecret@127.0.0.1:1/nowhere", connectTimeout: 2, logger: .init(label: "test"))
        }
        #expect(error?.code == .connectionFailed)
        #expect(error?.message.contains("127.0.0.1") == true)
        #expect(error?.message.contains("topsecret") == false)
    }
}
