/// Vector arithmetic on the hot path of search, in SIMD lanes.
public enum VectorMath {
    /// Dot product of two equally long float buffers.
    @inlinable
    public static func dot(_ a: UnsafeBufferPointer<Float>, _ b: UnsafeBufferPointer<Float>) -> Float {
        let count = min(a.count, b.count)
        guard let pa = a.baseAddress, let pb = b.baseAddress else { return 0 }
        var sum = SIMD16<Float>()
        var index = 0
        let rawA = UnsafeRawPointer(pa)
        let rawB = UnsafeRawPointer(pb)
        while index + 16 <= count {
            let va = rawA.loadUnaligned(fromByteOffset: index * 4, as: SIMD16<Float>.self)
            let vb = rawB.loadUnaligned(fromByteOffset: index * 4, as: SIMD16<Float>.self)
            sum += va * vb
            index += 16
        }
        var total = sum.sum()
        while index < count {
            total += pa[index] * pb[index]
            index += 1
        }
        return total
    }

    /// Euclidean length.
    public static func norm(_ vector: [Float]) -> Float {
        vector.withUnsafeBufferPointer { dot($0, $0) }.squareRoot()
    }

    /// The vector scaled to length 1 (unchanged when zero).
    public static func normalized(_ vector: [Float]) -> [Float] {
        let length = norm(vector)
        guard length > 0 else { return vector }
        return vector.map { $0 / length }
    }
}

/// Keeps the `k` best-scoring items seen.
public struct TopK<Item> {
    public let k: Int
    public private(set) var items: [(score: Float, item: Item)] = []

    public init(_ k: Int) {
        self.k = k
        items.reserveCapacity(k + 1)
    }

    /// The score an item must beat to enter.
    public var threshold: Float { items.count < k ? -.infinity : items[items.count - 1].score }

    public mutating func offer(_ score: Float, _ item: @autoclosure () -> Item) {
        guard k > 0, score > threshold else { return }
        let position = items.firstIndex { $0.score < score } ?? items.count
        items.insert((score, item()), at: position)
        if items.count > k { items.removeLast() }
    }

    /// Offers `item`, which stands for the same thing as any kept item for which `same` holds (a
    /// document's other chunk): it then replaces that item if it scores higher, and is dropped
    /// otherwise, so each thing is kept at most once, with its best score.
    public mutating func offer(_ score: Float, _ item: Item, replacing same: (Item, Item) -> Bool) {
        guard k > 0, score > threshold else { return }
        if let existing = items.firstIndex(where: { same($0.item, item) }) {
            guard items[existing].score < score else { return }
            items.remove(at: existing)
        }
        let position = items.firstIndex { $0.score < score } ?? items.count
        items.insert((score, item), at: position)
        if items.count > k { items.removeLast() }
    }
}
