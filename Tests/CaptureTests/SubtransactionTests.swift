import Postgres
import Testing

@testable import Capture

/// Streamed transactions with very many subtransactions (a PL/pgSQL loop with an EXCEPTION block
/// starts one per iteration), some aborted, nested, or cut across the spill boundary.
@Suite struct SubtransactionTests {
    /// Feeds frames straight into a decoder and an assembler, collecting committed transactions.
    final class Feeder {
        var assembler: ChangeAssembler
        var committed: [[String]] = []

        init(configuration: ChangeAssembler.Configuration) { assembler = ChangeAssembler(configuration: configuration) }

        func feed(_ frame: [UInt8]) throws {
            let message = try PgOutputDecoder.decode(frame[...], inStream: assembler.inStream)
            if case .committed(var transaction) = try assembler.process(message) {
                var keys: [String] = []
                while let piece = try transaction.nextPiece() { keys += piece.changes.map { $0.keyText[0] ?? "" } }
                committed.append(keys)
            }
        }
    }

    @Test func twoHundredThousandSubtransactionsWithAbortsInTheMiddle() throws {
        var configuration = ChangeAssembler.Configuration()
        configuration.maxChangesInMemory = 1_000  // aborts cut both memory and the spool file
        configuration.pieceSize = 5_000
        let feeder = Feeder(configuration: configuration)
        let top: UInt32 = 7
        // What must arrive, built alongside the frames: each block of the loop knows what it drops.
        var expected: [String] = []
        var dropped = 0
        var streamed = 0
        func insert(_ key: String, _ xid: UInt32) throws {
            try feeder.feed(PgOutputBytes.insert(relation: 1, [key, "v"], xid: xid))
            streamed += 1
            if streamed % 997 == 0 {
                // The walsender streams in blocks; other work happens between them.
                try feeder.feed([UInt8(ascii: "E")])
                try feeder.feed(PgOutputBytes.streamStart(xid: top, first: false))
            }
        }
        func abort(_ subXID: UInt32) throws {
            try feeder.feed([UInt8(ascii: "E")])
            try feeder.feed(PgOutputBytes.streamAbort(xid: top, subXID: subXID))
            try feeder.feed(PgOutputBytes.streamStart(xid: top, first: false))
        }

        try feeder.feed(PgOutputBytes.streamStart(xid: top, first: true))
        try feeder.feed(PgOutputBytes.relation(id: 1, name: "items", columns: [("id", true), ("v", false)], xid: top))
        var nextNested: UInt32 = 1_000_000
        for i in 0..<200_000 {
            let sub = UInt32(1_000 + i)
            if i % 5 == 0 {
                try insert("t\(i)", top)
                expected.append("t\(i)")
            }
            let begin = expected.count
            try insert("s\(i)", sub)
            expected.append("s\(i)")
            switch i {
            case _ where i % 7 == 3:
                // The iteration raised: its subtransaction aborts, nothing else.
                try abort(sub)
                dropped += expected.count - begin
                expected.removeSubrange(begin...)
            case _ where i % 1_000 == 500:
                // Nested blocks: children begin after the parent; aborting the second child drops it
                // and the third, aborting the parent drops them all.
                var childStarts: [Int] = []
                for k in 0..<3 {
                    childStarts.append(expected.count)
                    try insert("n\(i).\(k)", nextNested + UInt32(k))
                    expected.append("n\(i).\(k)")
                }
                try abort(nextNested + 1)
                dropped += expected.count - childStarts[1]
                expected.removeSubrange(childStarts[1]...)
                try abort(nextNested + 2)  // already gone with its elder sibling: no effect
                if i % 2_000 == 500 {
                    try abort(sub)
                    dropped += expected.count - begin
                    expected.removeSubrange(begin...)
                }
                nextNested += 3
            case 100_001:
                // A subtransaction larger than memory: it spills, then aborts across the boundary.
                for k in 0..<2_500 { try insert("big\(k)", sub) }
                try abort(sub)
                dropped += expected.count - begin
                expected.removeSubrange(begin...)
            default:
                break
            }
            if i == 150_000 { try abort(999_999_999) }  // an unknown subtransaction: no effect
        }
        try feeder.feed([UInt8(ascii: "E")])
        try feeder.feed(PgOutputBytes.streamCommit(xid: top, commit: 90, end: 91))
        // A later ordinary transaction is unaffected.
        try feeder.feed(PgOutputBytes.begin(final: 100, xid: 8))
        try feeder.feed(PgOutputBytes.insert(relation: 1, ["after", "v"]))
        try feeder.feed(PgOutputBytes.commit(commit: 100, end: 101))

        #expect(feeder.committed.count == 2)
        let keys = try #require(feeder.committed.first)
        #expect(dropped > 25_000, "the test aborts a large share (\(dropped))")
        #expect(keys.count == expected.count)
        #expect(keys == expected, "first difference at \(zip(keys, expected).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? -1)")
        #expect(Set(keys).count == keys.count, "every surviving change once")
        #expect(feeder.committed.last == ["after"])
    }
}
