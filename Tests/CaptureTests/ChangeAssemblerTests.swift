import Postgres
import Testing

@testable import Capture

@Suite struct ChangeAssemblerTests {
    /// Feeds raw frames through the decoder and assembler, collecting every committed transaction whole.
    func run(_ frames: [[UInt8]], configuration: ChangeAssembler.Configuration = .init()) throws -> (transactions: [[TransactionPiece]], messages: [PgOutputMessage.LogicalMessage]) {
        var assembler = ChangeAssembler(configuration: configuration)
        var transactions: [[TransactionPiece]] = []
        var messages: [PgOutputMessage.LogicalMessage] = []
        for frame in frames {
            let message = try PgOutputDecoder.decode(frame[...], inStream: assembler.inStream)
            switch try assembler.process(message) {
            case .none: break
            case .message(let logical): messages.append(logical)
            case .committed(var transaction):
                var pieces: [TransactionPiece] = []
                while let piece = try transaction.nextPiece() { pieces.append(piece) }
                transactions.append(pieces)
            }
        }
        return (transactions, messages)
    }

    let relation = PgOutputBytes.relation(id: 1, name: "items", columns: [("id", true), ("name", false)])

    @Test func transactionIsDeliveredOnlyAtCommitWithKeysAndPositions() throws {
        let frames = [
            PgOutputBytes.begin(final: 100, xid: 5), relation,
            PgOutputBytes.insert(relation: 1, ["1", "one"]), PgOutputBytes.insert(relation: 1, ["2", "two"]),
            PgOutputBytes.delete(relation: 1, key: ["1", nil]),
        ]
        #expect(try run(frames).transactions.isEmpty)
        let result = try run(frames + [PgOutputBytes.commit(commit: 100, end: 120)])
        let pieces = try #require(result.transactions.first)
        #expect(pieces.count == 1)
        let piece = pieces[0]
        #expect(piece.isFinal && piece.endLSN == LSN(120) && piece.commitLSN == LSN(100) && piece.xid == 5)
        #expect(piece.changes.map(\.operation) == [.insert, .insert, .delete])
        #expect(piece.changes.map(\.keyText) == [["1"], ["2"], ["1"]])
        #expect(piece.changes[0].value("name") == .text("one"))
        #expect(piece.changes[2].oldKey == [.text("1")])
        #expect(piece.changes[0].table == TableName(schema: "public", name: "items"))
    }

    @Test func configuredKeyOverridesReplicaIdentityFull() throws {
        var configuration = ChangeAssembler.Configuration()
        configuration.keyColumns = [TableName(schema: "public", name: "items"): ["id"]]
        let full = PgOutputBytes.relation(id: 1, name: "items", columns: [("id", true), ("name", true)], identity: "f")
        let update = PgOutputBytes("U")
        update.u32(1).char("O").tuple(["1", "old"]).char("N").u16(2).text("1").char("u")
        let result = try run([PgOutputBytes.begin(final: 1, xid: 1), full, update.bytes, PgOutputBytes.commit(commit: 1, end: 2)], configuration: configuration)
        let change = try #require(result.transactions.first?.first?.changes.first)
        #expect(change.keyText == ["1"])
        #expect(change.oldKey == nil, "the key did not change")
        // Under FULL the old row supplies the value of an unchanged TOAST column.
        #expect(change.newValues == [.text("1"), .text("old")])
    }

    @Test func largeTransactionSpillsAndArrivesInBoundedPieces() throws {
        var configuration = ChangeAssembler.Configuration()
        configuration.maxChangesInMemory = 100
        configuration.pieceSize = 250
        var frames = [PgOutputBytes.begin(final: 1, xid: 9), relation]
        for id in 0..<1_000 { frames.append(PgOutputBytes.insert(relation: 1, [String(id), "row \(id)"])) }
        frames.append(PgOutputBytes.commit(commit: 1, end: 2))
        let pieces = try #require(try run(frames, configuration: configuration).transactions.first)
        #expect(pieces.map(\.changes.count) == [250, 250, 250, 250])
        #expect(pieces.map(\.isFinal) == [false, false, false, true])
        #expect(pieces.flatMap(\.changes).map { $0.keyText[0] } == (0..<1_000).map { String($0) })
    }

    @Test func streamedTransactionsInterleaveAndAbortsAreDiscarded() throws {
        var configuration = ChangeAssembler.Configuration()
        configuration.maxChangesInMemory = 3  // force the spool path
        var frames: [[UInt8]] = [PgOutputBytes.streamStart(xid: 10, first: true), PgOutputBytes.relation(id: 1, name: "items", columns: [("id", true), ("name", false)], xid: 10)]
        // xid 10: rows 1-4 in the top transaction, 5-8 in subtransaction 11, 9-10 in subtransaction 12.
        for id in 1...4 { frames.append(PgOutputBytes.insert(relation: 1, [String(id), "a"], xid: 10)) }
        for id in 5...8 { frames.append(PgOutputBytes.insert(relation: 1, [String(id), "b"], xid: 11)) }
        frames.append([UInt8(ascii: "E")])
        // A whole other streamed transaction that aborts.
        frames.append(PgOutputBytes.streamStart(xid: 20, first: true))
        frames.append(PgOutputBytes.insert(relation: 1, ["99", "never"], xid: 20))
        frames.append([UInt8(ascii: "E")])
        frames.append(PgOutputBytes.streamAbort(xid: 20, subXID: 20))
        // A small ordinary transaction commits in between.
        frames += [PgOutputBytes.begin(final: 50, xid: 30), PgOutputBytes.insert(relation: 1, ["50", "c"]), PgOutputBytes.commit(commit: 50, end: 51)]
        frames.append(PgOutputBytes.streamStart(xid: 10, first: false))
        for id in 9...10 { frames.append(PgOutputBytes.insert(relation: 1, [String(id), "d"], xid: 12)) }
        frames.append([UInt8(ascii: "E")])
        frames.append(PgOutputBytes.streamAbort(xid: 10, subXID: 11))  // drops 5-8 and the later 9-10
        frames.append(PgOutputBytes.streamStart(xid: 10, first: false))
        frames.append(PgOutputBytes.insert(relation: 1, ["11", "e"], xid: 10))
        frames.append([UInt8(ascii: "E")])
        frames.append(PgOutputBytes.streamCommit(xid: 10, commit: 90, end: 91))

        let result = try run(frames, configuration: configuration)
        #expect(result.transactions.count == 2)
        #expect(result.transactions[0].flatMap(\.changes).map { $0.keyText[0] } == ["50"])
        #expect(result.transactions[1].flatMap(\.changes).map { $0.keyText[0] } == ["1", "2", "3", "4", "11"])
        #expect(result.transactions[1].last?.endLSN == LSN(91))
    }

    @Test func nonTransactionalMessagesPassThroughImmediately() throws {
        let message = PgOutputBytes("M")
        message.u8(0).u64(77).string("tidemark.watermark").u32(2).u8(1).u8(2)
        let result = try run([message.bytes])
        #expect(result.messages.map(\.lsn) == [LSN(77)])
    }

    @Test func protocolViolationsAreErrors() {
        #expect(throws: CaptureError.self) { try run([PgOutputBytes.commit(commit: 1, end: 2)]) }
        #expect(throws: CaptureError.self) { try run([PgOutputBytes.begin(final: 1, xid: 1), PgOutputBytes.insert(relation: 42, ["1"])]) }
        #expect(throws: CaptureError.self) { try run([PgOutputBytes.insert(relation: 1, ["1"])]) }
    }

    @Test func emptyTransactionYieldsOneFinalPiece() throws {
        let pieces = try #require(try run([PgOutputBytes.begin(final: 1, xid: 1), PgOutputBytes.commit(commit: 1, end: 2)]).transactions.first)
        #expect(pieces.count == 1 && pieces[0].isFinal && pieces[0].changes.isEmpty)
    }
}
