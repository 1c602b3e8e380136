/// Several `CopyData` messages read in one go, stored back to back in one buffer.
///
/// Reading the replication stream message by message would cost one executor hop and one
/// allocation per row; a batch costs one of each per poll.
public struct CopyBatch: Sendable {
    /// All message payloads, concatenated.
    public var storage: [UInt8] = []
    /// The range of each message in ``storage``.
    public var ranges: [Range<Int>] = []
    /// The server ended the COPY stream (e.g. after `--endpos`-like termination or shutdown).
    public var ended = false

    public init() {}

    public var count: Int { ranges.count }
    public var isEmpty: Bool { ranges.isEmpty }

    /// The bytes of message `index`.
    public subscript(index: Int) -> ArraySlice<UInt8> { storage[ranges[index]] }

    mutating func append(_ pointer: UnsafePointer<CChar>, count: Int) {
        let start = storage.count
        pointer.withMemoryRebound(to: UInt8.self, capacity: count) {
            storage.append(contentsOf: UnsafeBufferPointer(start: $0, count: count))
        }
        ranges.append(start..<storage.count)
    }
}
