/// A PostgreSQL write-ahead-log position (`pg_lsn`), printed as two hexadecimal halves: `16/B374D848`.
///
/// Ordered by position; `LSN.zero` (`0/0`) is the "invalid"/"from the start" value used by the
/// replication protocol.
public struct LSN: RawRepresentable, Hashable, Comparable, Sendable, CustomStringConvertible, Codable {
    public var rawValue: UInt64

    public init(rawValue: UInt64) { self.rawValue = rawValue }
    public init(_ value: UInt64) { self.rawValue = value }

    /// `0/0`.
    public static let zero = LSN(0)

    /// Parses `XXXXXXXX/XXXXXXXX` (one to eight hex digits on each side). Returns `nil` for anything else.
    public init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2,
            (1...8).contains(parts[0].count), (1...8).contains(parts[1].count),
            let high = UInt32(parts[0], radix: 16), let low = UInt32(parts[1], radix: 16)
        else { return nil }
        self.rawValue = UInt64(high) << 32 | UInt64(low)
    }

    /// Parses like ``init(_:)-(some StringProtocol)`` but throws an error naming the bad text.
    public static func parse(_ text: String) throws -> LSN {
        guard let lsn = LSN(text) else {
            throw PostgresError(.invalidLSN, "'\(text)' is not a WAL position; expected two hex numbers like 16/B374D848")
        }
        return lsn
    }

    public var description: String {
        String(rawValue >> 32, radix: 16, uppercase: true) + "/"
            + String(rawValue & 0xFFFF_FFFF, radix: 16, uppercase: true)
    }

    public static func < (lhs: LSN, rhs: LSN) -> Bool { lhs.rawValue < rhs.rawValue }

    /// Bytes of WAL between two positions (zero when `other` is ahead).
    public func distance(from other: LSN) -> UInt64 {
        rawValue >= other.rawValue ? rawValue - other.rawValue : 0
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        self = try LSN.parse(text)
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(description)
    }
}
