/// A fixed-memory latency histogram: 0.1 ms buckets up to 100 ms, then 10 ms buckets up to 60 s.
public struct LatencyHistogram: Sendable, Equatable {
    private var fine = [Int](repeating: 0, count: 1_000)
    private var coarse = [Int](repeating: 0, count: 6_000)
    public private(set) var count = 0
    public private(set) var maximum = 0.0

    public init() {}

    public mutating func record(milliseconds value: Double) {
        let clamped = max(0, value)
        count += 1
        maximum = max(maximum, clamped)
        if clamped < 100 {
            fine[min(999, Int(clamped * 10))] += 1
        } else {
            coarse[min(5_999, Int(clamped / 10))] += 1
        }
    }

    /// The value below which `fraction` (0…1) of the samples lie, to bucket precision; 0 when empty.
    public func percentile(_ fraction: Double) -> Double {
        guard count > 0 else { return 0 }
        let rank = max(1, Int((fraction * Double(count)).rounded(.up)))
        var seen = 0
        for (index, bucket) in fine.enumerated() {
            seen += bucket
            if seen >= rank { return Double(index + 1) / 10 }
        }
        for (index, bucket) in coarse.enumerated() {
            seen += bucket
            if seen >= rank { return Double(index + 1) * 10 }
        }
        return maximum
    }

    public mutating func reset() { self = LatencyHistogram() }

    /// The samples recorded since `earlier`, a copy of this histogram taken before. The maximum is
    /// exact when it was recorded after `earlier`, else to bucket precision.
    public func subtracting(_ earlier: LatencyHistogram) -> LatencyHistogram {
        var result = LatencyHistogram()
        result.fine = zip(fine, earlier.fine).map { max(0, $0 - $1) }
        result.coarse = zip(coarse, earlier.coarse).map { max(0, $0 - $1) }
        result.count = max(0, count - earlier.count)
        if maximum > earlier.maximum {
            result.maximum = maximum
        } else if let index = result.coarse.lastIndex(where: { $0 > 0 }) {
            result.maximum = min(maximum, Double(index + 1) * 10)
        } else if let index = result.fine.lastIndex(where: { $0 > 0 }) {
            result.maximum = min(maximum, Double(index + 1) / 10)
        }
        return result
    }
}
