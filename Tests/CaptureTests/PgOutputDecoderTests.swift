import Postgres
import Testing

@testable import Capture

@Suite struct PgOutputDecoderTests {
    func decode(_ bytes: [UInt8], inStream: Bool = false) throws -> PgOutputMessage {
        try PgOutputDecoder.decode(bytes[...], inStream: inStream)
    }

    @Test func beginAndCommit() throws {
        #expect(try decode(PgOutputBytes.begin(final: 0x16_B374_D848, xid: 77))
            == .begin(.init(finalLSN: LSN(0x16_B374_D848), commitTimestamp: 1_000_000, xid: 77)))
        #expect(try decode(PgOutputBytes.commit(commit: 10, end: 20))
            == .commit(.init(flags: 0, commitLSN: LSN(10), endLSN: LSN(20), commitTimestamp: 1_000_000)))
    }

    @Test func relationWithKeyFlags() throws {
        let message = try decode(PgOutputBytes.relation(id: 16384, schema: "shop", name: "products", columns: [("id", true), ("name", false)]))
        guard case .relation(let relation) = message else {
            Issue.record("expected a relation, got \(message)")
            return
        }
        #expect(relation.id == 16384)
        #expect(relation.namespace == "shop")
        #expect(relation.name == "products")
        #expect(relation.columns.map(\.name) == ["id", "name"])
        #expect(relation.columns.map(\.isKey) == [true, false])
        #expect(relation.replicaIdentity == UInt8(ascii: "d"))
    }

    @Test func tupleKeepsNullToastAndTextApart() throws {
        let b = PgOutputBytes("I")
        b.u32(1).char("N").u16(4).char("n").char("u").text("").text("héllo")
        #expect(try decode(b.bytes) == .insert(.init(streamXID: nil, relationID: 1, newTuple: [.null, .unchangedToast, .text(""), .text("héllo")])))
    }

    @Test func updateWithOldKeyAndOldFullRow() throws {
        let withKey = PgOutputBytes("U")
        withKey.u32(1).char("K").tuple(["1", nil]).char("N").tuple(["2", "x"])
        #expect(try decode(withKey.bytes) == .update(.init(streamXID: nil, relationID: 1, old: .key([.text("1"), .null]), newTuple: [.text("2"), .text("x")])))

        let withFull = PgOutputBytes("U")
        withFull.u32(1).char("O").tuple(["1", "a"]).char("N").tuple(["1", "b"])
        #expect(try decode(withFull.bytes) == .update(.init(streamXID: nil, relationID: 1, old: .full([.text("1"), .text("a")]), newTuple: [.text("1"), .text("b")])))

        let plain = PgOutputBytes("U")
        plain.u32(1).char("N").tuple(["1", "b"])
        #expect(try decode(plain.bytes) == .update(.init(streamXID: nil, relationID: 1, old: nil, newTuple: [.text("1"), .text("b")])))
    }

    @Test func deleteTruncateMessageOriginType() throws {
        #expect(try decode(PgOutputBytes.delete(relation: 9, key: ["5"])) == .delete(.init(streamXID: nil, relationID: 9, old: .key([.text("5")]))))

        let truncate = PgOutputBytes("T")
        truncate.u32(2).u8(3).u32(10).u32(11)
        #expect(try decode(truncate.bytes) == .truncate(.init(streamXID: nil, options: 3, relationIDs: [10, 11])))

        let message = PgOutputBytes("M")
        message.u8(1).u64(42).string("tidemark").u32(3).u8(1).u8(2).u8(3)
        #expect(try decode(message.bytes) == .message(.init(streamXID: nil, isTransactional: true, lsn: LSN(42), prefix: "tidemark", content: [1, 2, 3])))

        let origin = PgOutputBytes("O")
        origin.u64(7).string("node_a")
        #expect(try decode(origin.bytes) == .origin(.init(commitLSN: LSN(7), name: "node_a")))

        let type = PgOutputBytes("Y")
        type.u32(600).string("public").string("mood")
        #expect(try decode(type.bytes) == .type(.init(streamXID: nil, id: 600, namespace: "public", name: "mood")))
    }

    @Test func streamingMessagesCarryTheTransactionID() throws {
        #expect(try decode(PgOutputBytes.streamStart(xid: 900, first: true)) == .streamStart(.init(xid: 900, isFirstSegment: true)))
        #expect(try decode([UInt8(ascii: "E")]) == .streamStop)
        #expect(try decode(PgOutputBytes.insert(relation: 1, ["1"], xid: 901), inStream: true)
            == .insert(.init(streamXID: 901, relationID: 1, newTuple: [.text("1")])))
        #expect(try decode(PgOutputBytes.streamCommit(xid: 900, commit: 5, end: 6))
            == .streamCommit(.init(xid: 900, flags: 0, commitLSN: LSN(5), endLSN: LSN(6), commitTimestamp: 1_000_000)))
        #expect(try decode(PgOutputBytes.streamAbort(xid: 900, subXID: 901)) == .streamAbort(.init(xid: 900, subXID: 901)))
        // Protocol 4 appends the abort LSN and time.
        let v4 = PgOutputBytes("A")
        v4.u32(900).u32(900).u64(1).u64(2)
        #expect(try decode(v4.bytes) == .streamAbort(.init(xid: 900, subXID: 900)))
    }

    @Test func everyTruncationOfAValidMessageThrowsWithOffsetAndType() throws {
        let update = PgOutputBytes("U")
        update.u32(1).char("O").tuple(["1", "a"]).char("N").tuple(["1", nil])
        let samples: [[UInt8]] = [
            PgOutputBytes.begin(final: 1, xid: 2), PgOutputBytes.commit(commit: 1, end: 2),
            PgOutputBytes.relation(id: 1, name: "t", columns: [("id", true), ("body", false)]),
            PgOutputBytes.insert(relation: 1, ["1", "text"]), update.bytes,
            PgOutputBytes.delete(relation: 1, key: ["1"]), PgOutputBytes.streamCommit(xid: 1, commit: 2, end: 3),
        ]
        for sample in samples {
            for length in 0..<sample.count {
                let error = #expect(throws: CaptureError.self) { try decode(Array(sample[0..<length])) }
                #expect(error?.code == .malformedMessage)
                if length > 0 {
                    #expect(error?.message.contains("offset") == true, "no offset in: \(error?.message ?? "")")
                    #expect(error?.message.contains(PgOutputDecoder.messageName(sample[0])) == true)
                }
            }
            #expect(throws: Never.self) { try decode(sample) }
        }
    }

    @Test func trailingBytesAndUnknownKindsAreErrors() {
        #expect(throws: CaptureError.self) { try decode(PgOutputBytes.begin(final: 1, xid: 2) + [0]) }
        #expect(throws: CaptureError.self) { try decode([UInt8(ascii: "Z"), 1, 2]) }
        let badKind = PgOutputBytes("I")
        badKind.u32(1).char("N").u16(1).char("q")
        let error = #expect(throws: CaptureError.self) { try decode(badKind.bytes) }
        #expect(error?.message.contains("unknown column kind 'q'") == true)
        // A huge declared length must not allocate or trap.
        let huge = PgOutputBytes("I")
        huge.u32(1).char("N").u16(1).char("t").u32(0xFFFF_FFFF)
        #expect(throws: CaptureError.self) { try decode(huge.bytes) }
        let manyColumns = PgOutputBytes("I")
        manyColumns.u32(1).char("N").u16(0xFFFF)
        #expect(throws: CaptureError.self) { try decode(manyColumns.bytes) }
        let manyRelations = PgOutputBytes("T")
        manyRelations.u32(0xFFFF_FFFF).u8(0)
        #expect(throws: CaptureError.self) { try decode(manyRelations.bytes) }
    }

    @Test func garbledFramesNeverCrash() {
        var generator = SplitMix64(seed: 0x7DE)
        let tags = Array("BCORYIUDTMSEcA".utf8)
        var decoded = 0
        for round in 0..<20_000 {
            let length = Int(generator.next() % 64)
            var bytes = (0..<length).map { _ in UInt8(truncatingIfNeeded: generator.next()) }
            if !bytes.isEmpty && round % 2 == 0 { bytes[0] = tags[Int(generator.next() % UInt64(tags.count))] }
            if (try? PgOutputDecoder.decode(bytes[...], inStream: round % 3 == 0)) != nil { decoded += 1 }
            _ = try? WalSenderMessage.decode(bytes[...])
        }
        // Random bytes almost never form a valid message; the point is that none trapped.
        #expect(decoded < 20_000)
    }

    @Test func walSenderFrames() throws {
        let keepalive = PgOutputBytes("k")
        keepalive.u64(0x10).u64(99).u8(1)
        #expect(try WalSenderMessage.decode(keepalive.bytes[...]) == .keepalive(walEnd: LSN(0x10), sendTime: 99, replyRequested: true))

        let data = PgOutputBytes("w")
        data.u64(1).u64(2).u64(3)
        let payload = PgOutputBytes.begin(final: 5, xid: 6)
        let frame = data.bytes + payload
        guard case .xLogData(let start, let end, _, let body) = try WalSenderMessage.decode(frame[...]) else {
            Issue.record("expected XLogData")
            return
        }
        #expect(start == LSN(1) && end == LSN(2))
        #expect(Array(body) == payload)
        #expect(throws: CaptureError.self) { try WalSenderMessage.decode(data.bytes[...]) }
        #expect(throws: CaptureError.self) { try WalSenderMessage.decode(keepalive.bytes.dropLast()) }
    }

    @Test func standbyStatusUpdateWireFormat() {
        let update = StandbyStatusUpdate(written: LSN(0x0102), flushed: LSN(0x0304), applied: LSN(0x0506), clock: 7, replyRequested: true)
        let bytes = update.bytes
        #expect(bytes.count == 34)
        #expect(bytes[0] == UInt8(ascii: "r"))
        #expect(Array(bytes[7...8]) == [0x01, 0x02])
        #expect(Array(bytes[15...16]) == [0x03, 0x04])
        #expect(Array(bytes[23...24]) == [0x05, 0x06])
        #expect(bytes[32] == 7)
        #expect(bytes[33] == 1)
    }
}

/// A small deterministic generator, so failures reproduce.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
