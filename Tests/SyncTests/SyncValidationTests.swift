import Capture
import Foundation
import Indexing
import Logging
import Postgres
import Testing

@testable import Sync

/// Validation's pure parts: the row hash, the key order, reading stored source values, the
/// configuration, and the runner's skip rule.
@Suite struct SyncValidationTests {
    func hash(_ text: String, _ seed: UInt64 = 0) -> Int64 {
        var copy = text
        return RowHash.signed(copy.withUTF8 { RowHash.hash(UnsafeRawBufferPointer($0), seed: seed) })
    }

    @Test func rowHashIsPostgresHashTextExtended() {
        // Values from `SELECT hashtextextended(…)` on PostgreSQL 15 and 18.
        #expect(hash("abc") == -6_747_756_470_228_489_321)
        #expect(hash("") == -6_939_563_903_564_495_251)
        #expect(hash("abcdefghijklmnop", 12_345) == -1_350_384_842_143_609_913)
    }

    @Test func rowHashTellsNullFromEmptyAndMissing() {
        var null = RowHash()
        null.add(nil)
        var empty = RowHash()
        empty.add("")
        var missing = RowHash()
        missing.addMissing()
        #expect(Set([null.value, empty.value, missing.value]).count == 3)
        #expect(RowHash.of(["a", "bc"]) != RowHash.of(["ab", "c"]), "no separators, yet unambiguous")
        #expect(RowHash.of(["a", nil]) != RowHash.of([nil, "a"]))
    }

    @Test func keyOrderComparesIntegersAndDecimalsAsNumbersAndTextAsBytes() {
        let integers = KeyOrder(keyTypes: ["bigint"], keyCount: 1)
        #expect(KeyOrder.compare(integers.key(["9"]), integers.key(["10"])) < 0)
        #expect(KeyOrder.compare(integers.key(["-10"]), integers.key(["-9"])) < 0)
        let decimals = KeyOrder(keyTypes: ["numeric(10,2)"], keyCount: 1)
        let ordered = ["-Infinity", "-10", "-1.5", "-1", "0", "0.05", "0.5", "1.50", "10", "Infinity", "NaN"]
        for (a, b) in zip(ordered, ordered.dropFirst()) {
            #expect(KeyOrder.compare(decimals.key([a]), decimals.key([b])) < 0, "\(a) < \(b)")
        }
        #expect(KeyOrder.compare(decimals.key(["1.5"]), decimals.key(["1.50"])) == 0)
        let texts = KeyOrder(keyTypes: ["text", "uuid"], keyCount: 2)
        #expect(KeyOrder.compare(texts.key(["B", "x"]), texts.key(["a", "x"])) < 0, "byte order, as under COLLATE \"C\"")
        #expect(KeyOrder.compare(texts.key(["z", "x"]), texts.key(["é", "x"])) < 0)
        #expect(KeyOrder.compare(texts.key(["a", "1"]), texts.key(["a", "2"])) < 0)
        // Ranges (−∞, 10], (10, 20], (20, +∞).
        let bounds = [integers.key(["10"]), integers.key(["20"])]
        #expect(KeyOrder.rangeIndex(of: integers.key(["3"]), upperBounds: bounds) == 0)
        #expect(KeyOrder.rangeIndex(of: integers.key(["10"]), upperBounds: bounds) == 0)
        #expect(KeyOrder.rangeIndex(of: integers.key(["11"]), upperBounds: bounds) == 1)
        #expect(KeyOrder.rangeIndex(of: integers.key(["21"]), upperBounds: bounds) == 2)
        #expect(KeyRange.split(at: [["10"], ["20"]]) == [
            KeyRange(lower: nil, upper: ["10"]), KeyRange(lower: ["10"], upper: ["20"]), KeyRange(lower: ["20"], upper: nil),
        ])
    }

    @Test func storedSourceValuesHashLikeTheRowTheyCameFrom() {
        let columns = ["title", "body", "tag", "note"]
        let values: [String: String?] = [
            "title": "say \"hi\" \\ back\\slash", "body": "two\nlines\tand \u{1} control, naïve café 🌊", "tag": nil, "note": "",
        ]
        var scanner = SourceValueScanner(columns: columns)
        var expected = RowHash()
        for column in columns { expected.add(values[column] ?? nil) }
        var fromFlat = RowHash()
        #expect(scanner.hash(FlatJSON.encode(values), into: &fromFlat))
        #expect(fromFlat == expected)
        // A jsonb-like text: other key order, spaces, an escaped solidus and a surrogate pair.
        var fromJSONB = RowHash()
        let jsonb = #"{"tag": null, "note": "", "body": "two\nlines\tand \u0001 control, naïve café \ud83c\udf0a", "title": "say \"hi\" \\ back\\slash", "other": "x"}"#
        #expect(scanner.hash(jsonb, into: &fromJSONB))
        #expect(fromJSONB == expected)
        // A column the document lacks is not NULL.
        var lacking = RowHash()
        #expect(scanner.hash(#"{"title": "say \"hi\" \\ back\\slash", "body": "x", "note": ""}"#, into: &lacking))
        #expect(lacking != expected)
        var broken = RowHash()
        #expect(!scanner.hash(#"{"title": "#, into: &broken))
    }

    /// A document's check (what the store digests) hashes exactly like the validator's pass over the
    /// document's stored values, for composite keys, NULLs and awkward text.
    @Test func aDocumentsCheckHashesLikeItsStoredValues() throws {
        let mapping = EntityMapping(
            name: "e", table: TableName(schema: "public", name: "t"), keyColumns: ["region", "id"],
            template: try ContentTemplate("{{title}} {{body}}"), metadataColumns: ["tag"], keyTypes: ["text", "bigint"])
        let path = NSTemporaryDirectory() + "tidemark-check-\(UUID().uuidString).db"
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        var index = IndexDigest(store: try SQLiteIndexStore(configuration: .init(path: path), logger: Logger(label: "test")), entity: mapping, pageSize: 10)
        for (region, id, title, body, tag) in [
            ("eu", "1", "say \"hi\"", "two\nlines", nil), ("naïve 🌊", "-42", "", nil, "t"), ("[\"x\",", "9", "a,b", "\\", ""),
        ] as [(String, String, String?, String?, String?)] {
            let values: [String: String?] = ["region": region, "id": id, "title": title, "body": body, "tag": tag]
            let documentID = DocumentID.make([region, id])
            let document = try mapping.document(id: documentID, values: values, lsn: LSN(1))
            let check = try #require(document.check)
            let hashed = index.hash(id: documentID, sourceJSON: FlatJSON.encode(document.sourceValues))
            let placed = try #require(hashed)
            #expect(placed.hash.map(RowHash.signed) == check.rowHash, "\(documentID)")
            #expect(check.orderKey == mapping.keyOrder.encoded([region, id]) && check.render == mapping.renderFingerprint)
        }
        let other = EntityMapping(
            name: "e", table: TableName(schema: "public", name: "t"), keyColumns: ["region", "id"],
            template: try ContentTemplate("{{title}}: {{body}}"), metadataColumns: ["tag"], keyTypes: ["text", "bigint"])
        #expect(other.renderFingerprint != mapping.renderFingerprint, "another template is another rendering")
        let otherKey = EntityMapping(
            name: "e", table: TableName(schema: "public", name: "t"), keyColumns: ["id"],
            template: try ContentTemplate("{{title}} {{body}}"), metadataColumns: ["tag"], keyTypes: ["bigint"])
        #expect(otherKey.renderFingerprint != mapping.renderFingerprint, "documents written under another key are compared in full")
        let unusedBoolean = EntityMapping(
            name: "e", table: TableName(schema: "public", name: "t"), keyColumns: ["region", "id"],
            template: try ContentTemplate("{{title}} {{body}}"), metadataColumns: ["tag"], booleanColumns: ["archived"],
            keyTypes: ["text", "bigint"])
        #expect(unusedBoolean.renderFingerprint == mapping.renderFingerprint, "a boolean column no document reads changes nothing")
        let longKey = try mapping.document(
            id: DocumentID.make([String(repeating: "x", count: 2_000), "1"]),
            values: ["region": String(repeating: "x", count: 2_000), "id": "1", "title": "t", "body": "b", "tag": nil], lsn: LSN(1))
        #expect(longKey.check == nil, "a key too long for the check index is compared in full")
        let noKey = try mapping.document(id: "x", values: ["region": "eu", "id": nil, "title": "t", "body": "b", "tag": nil], lsn: LSN(1))
        #expect(noKey.check == nil)
    }

    /// Encoded keys sort by their bytes exactly as ``KeyOrder`` compares the keys: random integers,
    /// decimals (signs, zeros, infinities, NaN), text and composite keys, seeded.
    @Test func encodedKeysSortLikeTheKeyOrder() {
        var random = SystemRandomNumberGenerator()
        var seed = UInt64.random(in: 0...UInt64.max, using: &random)
        let start = seed
        func next() -> UInt64 {
            seed &+= 0x9E37_79B9_7F4A_7C15
            var z = seed
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        func pick<T>(_ values: [T]) -> T { values[Int(next() % UInt64(values.count))] }
        func integer() -> String {
            pick([String(Int64(bitPattern: next())), String(Int64(next() % 2_000) - 1_000), String(Int64.min), String(Int64.max), "0", "x1"])
        }
        func decimal() -> String {
            pick([
                "NaN", "Infinity", "-Infinity", "0", "0.000", "-0.0", String(format: "%.3f", Double(Int64(next() % 200_000) - 100_000) / 7),
                String(Int64(next() % 1_000) - 500), "12.5", "12.50", "-12.5", "-12.55", "007.100", "1e5",
            ])
        }
        func text() -> String { pick(["", "a", "ab", "abc", "B", "é", "z", "🌊", "a\u{1}", "ab c", String(next() % 1_000)]) }
        let layouts: [[String]] = [["bigint"], ["numeric"], ["text"], ["uuid", "integer"], ["bigint", "text"], ["numeric(10,2)", "bigint", "text"]]
        for _ in 0..<400 {
            let types = pick(layouts)
            let order = KeyOrder(keyTypes: types, keyCount: types.count)
            func key() -> [String] {
                types.map { type in
                    if type.hasPrefix("numeric") { return decimal() }
                    return ["bigint", "integer"].contains(type) ? integer() : text()
                }
            }
            let a = key()
            let b = next() % 4 == 0 ? a : key()
            let expected = KeyOrder.compare(order.key(a), order.key(b))
            let encoded = KeyOrder.compareEncoded(order.encoded(a), order.encoded(b))
            #expect(expected.signum() == encoded.signum(), "seed \(start): \(types) \(a) vs \(b)")
        }
    }

    @Test func documentIDsGiveBackTheirKeyTexts() {
        for key in [["7", "a\"b"], ["1", "back\\slash\n"], ["x", "é,\u{1}"]] {
            #expect(SourceValueScanner.keyTexts(DocumentID.make(key), keyCount: 2) == key)
        }
        #expect(SourceValueScanner.keyTexts("42", keyCount: 1) == ["42"])
        #expect(SourceValueScanner.keyTexts(#"["7"]"#, keyCount: 2) == nil)
        #expect(SourceValueScanner.keyTexts(#"["7",null]"#, keyCount: 2) == nil)
        #expect(SourceValueScanner.keyTexts("not an array", keyCount: 2) == nil)
    }

    let valid = """
        source: { url: "postgres://app@localhost:5432/shop" }
        entities:
          product: { table: public.products, content: "{{name}}" }
        """

    func message(_ text: String, environment: [String: String] = [:]) -> String {
        do {
            _ = try ConfigurationLoader(environment: environment).parse(text)
            return "no error"
        } catch {
            return error.message
        }
    }

    @Test func validationConfigurationDefaultsKeysAndErrors() throws {
        let defaults = try ConfigurationLoader(environment: [:]).parse(valid).validation
        #expect(defaults.schedule?.description == "0 2 * * *")
        #expect(defaults.repairSchedule?.description == "30 2 * * *")
        #expect(!defaults.autoRepair)
        #expect(defaults.segmentRows == 1_024 && defaults.checkContent)

        let set = try ConfigurationLoader(environment: [:]).parse(valid + """

            validation: { schedule: "*/30 * * * *", repair_schedule: off, auto_repair: true, time_zone: Europe/Berlin, segment_rows: 512, check_content: false }
            """).validation
        #expect(set.schedule?.description == "*/30 * * * *")
        #expect(set.repairSchedule == nil)
        #expect(set.autoRepair && set.timeZone.identifier == "Europe/Berlin" && set.segmentRows == 512 && !set.checkContent)

        let environment = try ConfigurationLoader(environment: [
            "TIDEMARK_VALIDATION_SCHEDULE": "@hourly", "TIDEMARK_VALIDATION_AUTO_REPAIR": "yes", "TIDEMARK_VALIDATION_TIME_ZONE": "UTC",
        ]).parse(valid).validation
        #expect(environment.schedule?.description == "@hourly" && environment.autoRepair && environment.timeZone.secondsFromGMT() == 0)

        #expect(message(valid + "\nvalidation: { schedule: \"0 25 * * *\" }").contains("validation.schedule: cron hour 25 is out of range"))
        #expect(message(valid + "\nvalidation: { repair_schedule: daily }").contains("validation.repair_schedule: 'daily' is not a cron expression"))
        #expect(message(valid + "\nvalidation: { time_zone: Mars/Olympus }").contains("validation.time_zone: 'Mars/Olympus' is not a time zone"))
        #expect(message(valid + "\nvalidation: { schedul: x }").contains("'validation.schedul' (did you mean 'schedule'?)"))
        #expect(message(valid + "\nvalidation: { segment_rows: 3 }").contains("validation.segment_rows must be at least 16"))
        #expect(message(valid, environment: ["TIDEMARK_VALIDATION_SCHEDULE": "nope"]).contains("validation.schedule"))
    }

    @Test func aRunIsSkippedWhileABackfillOfTheEntityRuns() async throws {
        let path = NSTemporaryDirectory() + "tidemark-runner-\(UUID().uuidString).db"
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        var logger = Logger(label: "tests")
        logger.logLevel = .critical
        let store = try SQLiteIndexStore(configuration: .init(path: path), logger: logger)
        let template = try ContentTemplate("{{name}}")
        let entity = EntityMapping(
            name: "product", table: TableName(schema: "public", name: "products"), keyColumns: ["id"], template: template,
            metadataColumns: [], keyTypes: ["integer"])
        let validator = Validator(configuration: .init(), entities: [entity], store: store, sourceURL: "postgres://nowhere.invalid/x", logger: logger)
        let runner = ValidationRunner(configuration: .init(), validator: validator, logger: logger)
        let backfill = JobRecord(id: JobRecord.newID(), entity: "product", kind: .backfill)
        try await store.saveJob(backfill)
        let request = try await ValidationRequests.submit(entity: "product", kind: .validate, trigger: "schedule", store: store)
        #expect(try await store.queuedValidations().map(\.id) == [request.id])
        await runner.process(request)
        let record = try #require(try await store.validation(request.id))
        #expect(record.status == .skipped)
        #expect(record.error?.contains(backfill.id) == true)
        #expect(try await store.queuedValidations().isEmpty)
        #expect(try await store.validations(entity: "product", limit: 10).map(\.id) == [request.id])
    }
}
