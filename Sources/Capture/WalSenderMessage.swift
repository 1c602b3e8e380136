import Foundation
import Postgres

/// A frame of the walsender's CopyBoth stream: WAL data or a keepalive.
public enum WalSenderMessage: Sendable, Equatable {
    /// `w`: a pgoutput message and the WAL positions around it.
    case xLogData(walStart: LSN, walEnd: LSN, sendTime: Int64, payload: ArraySlice<UInt8>)
    /// `k`: the server's WAL end and whether it wants a status update right away.
    case keepalive(walEnd: LSN, sendTime: Int64, replyRequested: Bool)

    /// Decodes one CopyData payload from the walsender.
    public static func decode(_ bytes: ArraySlice<UInt8>) throws(CaptureError) -> WalSenderMessage {
        guard let tag = bytes.first else {
            throw CaptureError(.malformedMessage, "empty replication frame")
        }
        switch tag {
        case UInt8(ascii: "w"):
            var reader = ByteReader(bytes, context: "XLogData")
            _ = try reader.uint8()
            let start = try reader.lsn("WAL start")
            let end = try reader.lsn("WAL end")
            let time = try reader.int64("send time")
            guard !reader.isAtEnd else { throw reader.error("missing payload") }
            return .xLogData(walStart: start, walEnd: end, sendTime: time, payload: bytes[reader.index...])
        case UInt8(ascii: "k"):
            var reader = ByteReader(bytes, context: "Keepalive")
            _ = try reader.uint8()
            let end = try reader.lsn("WAL end")
            let time = try reader.int64("send time")
            let reply = try reader.uint8("reply flag")
            guard reader.isAtEnd else { throw reader.error("\(reader.remaining) unexpected trailing bytes") }
            return .keepalive(walEnd: end, sendTime: time, replyRequested: reply != 0)
        default:
            throw CaptureError(
                .malformedMessage,
                "unknown replication frame type \(PgOutputDecoder.describe(tag)) at offset 0 of \(bytes.count) bytes")
        }
    }
}

/// The standby status update (`r`) a client sends to confirm progress.
public struct StandbyStatusUpdate: Sendable, Equatable {
    /// Last WAL position received.
    public var written: LSN
    /// Last WAL position made durable downstream: the slot's `confirmed_flush_lsn` follows it.
    public var flushed: LSN
    /// Last WAL position applied.
    public var applied: LSN
    /// Microseconds since 2000-01-01 UTC.
    public var clock: Int64
    public var replyRequested: Bool

    public init(written: LSN, flushed: LSN, applied: LSN, clock: Int64 = PostgresClock.now(), replyRequested: Bool = false) {
        self.written = written
        self.flushed = flushed
        self.applied = applied
        self.clock = clock
        self.replyRequested = replyRequested
    }

    /// The 34-byte wire form.
    public var bytes: [UInt8] {
        var bytes: [UInt8] = [UInt8(ascii: "r")]
        bytes.reserveCapacity(34)
        for value in [written.rawValue, flushed.rawValue, applied.rawValue, UInt64(bitPattern: clock)] {
            for shift in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8(truncatingIfNeeded: value >> UInt64(shift))) }
        }
        bytes.append(replyRequested ? 1 : 0)
        return bytes
    }
}

/// PostgreSQL's replication clock: microseconds since 2000-01-01 00:00:00 UTC.
public enum PostgresClock {
    /// Seconds between the Unix epoch and 2000-01-01.
    static let epochOffset: Int64 = 946_684_800

    public static func now() -> Int64 {
        var spec = timespec()
        clock_gettime(CLOCK_REALTIME, &spec)
        return (Int64(spec.tv_sec) - epochOffset) * 1_000_000 + Int64(spec.tv_nsec) / 1000
    }

    /// Converts a protocol timestamp to seconds since the Unix epoch.
    public static func unixSeconds(_ timestamp: Int64) -> Double {
        Double(timestamp) / 1_000_000 + Double(epochOffset)
    }
}
