/// A binary min-heap of candidate merges, ordered by rank and then by position (the leftmost of
/// equally ranked pairs merges first, as in the reference BPE). Push and pop are O(log n).
struct MergeQueue {
    /// A candidate: merge the symbol at `position` with its right neighbour into `merged`.
    struct Entry {
        /// `rank << 32 | position`: one integer comparison orders by rank, then position.
        var order: UInt64
        var merged: Int32

        var rank: UInt32 { UInt32(truncatingIfNeeded: order >> 32) }
        var position: Int { Int(UInt32(truncatingIfNeeded: order)) }
    }

    private var heap: [Entry] = []

    init(capacity: Int) { heap.reserveCapacity(capacity) }

    var isEmpty: Bool { heap.isEmpty }

    mutating func push(rank: UInt32, position: Int, merged: Int32) {
        heap.append(Entry(order: UInt64(rank) << 32 | UInt64(UInt32(truncatingIfNeeded: position)), merged: merged))
        var child = heap.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard heap[child].order < heap[parent].order else { break }
            heap.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Entry? {
        guard let last = heap.popLast() else { return nil }
        guard !heap.isEmpty else { return last }
        let top = heap[0]
        heap[0] = last
        var parent = 0
        let count = heap.count
        while true {
            let left = 2 * parent + 1
            guard left < count else { break }
            let right = left + 1
            let smaller = right < count && heap[right].order < heap[left].order ? right : left
            guard heap[smaller].order < heap[parent].order else { break }
            heap.swapAt(smaller, parent)
            parent = smaller
        }
        return top
    }
}
