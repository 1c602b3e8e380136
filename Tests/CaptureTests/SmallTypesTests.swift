import Postgres
import Testing

@testable import Capture

@Suite struct SmallTypesTests {
    @Test func tableNames() {
        #expect(TableName(parsing: "products") == TableName(schema: "public", name: "products"))
        #expect(TableName(parsing: "shop.products") == TableName(schema: "shop", name: "products"))
        #expect(TableName(parsing: "\"My Schema\".\"a.b\"") == TableName(schema: "My Schema", name: "a.b"))
        #expect(TableName(parsing: "a.b.c") == nil)
        #expect(TableName(parsing: "a.") == nil)
        #expect(TableName(schema: "we\"ird", name: "t").quoted == "\"we\"\"ird\".\"t\"")
    }

    @Test func statusIntervalFollowsSenderTimeout() {
        #expect(ReplicationReader.statusInterval(forSenderTimeout: "1min") == .seconds(10))
        #expect(ReplicationReader.statusInterval(forSenderTimeout: "8s") == .seconds(2))
        #expect(ReplicationReader.statusInterval(forSenderTimeout: "200ms") == .milliseconds(100))
        #expect(ReplicationReader.statusInterval(forSenderTimeout: "0") == .seconds(10))
        #expect(ReplicationReader.statusInterval(forSenderTimeout: "garbage") == .seconds(10))
    }

    @Test func queueAppliesBackpressure() async throws {
        let queue = BoundedQueue<Int>(capacity: 2)
        try await queue.push(1)
        try await queue.push(2)
        let producer = Task { try await queue.push(3) }
        try await Task.sleep(for: .milliseconds(50))
        #expect(queue.count == 2, "the third push must wait")
        #expect(await queue.pop() == 1)
        try await producer.value
        #expect(await queue.pop() == 2)
        #expect(await queue.pop() == 3)
        queue.finish()
        #expect(await queue.pop() == nil)
        await #expect(throws: CancellationError.self) { try await queue.push(4) }
    }

    @Test func queueWaitersAreReleasedOnCancel() async throws {
        let queue = BoundedQueue<Int>(capacity: 1)
        let consumer = Task { await queue.pop() }
        try await Task.sleep(for: .milliseconds(20))
        consumer.cancel()
        #expect(await consumer.value == nil)
        try await queue.push(1)
        let producer = Task { try await queue.push(2) }
        try await Task.sleep(for: .milliseconds(20))
        producer.cancel()
        await #expect(throws: CancellationError.self) { try await producer.value }
        #expect(queue.count == 1)
    }

    @Test func queuePreservesOrderUnderConcurrency() async throws {
        let queue = BoundedQueue<Int>(capacity: 4)
        let count = 10_000
        async let produced: Void = {
            for value in 0..<count { try await queue.push(value) }
            queue.finish()
        }()
        var received: [Int] = []
        while let value = await queue.pop() { received.append(value) }
        try await produced
        #expect(received == Array(0..<count))
    }

    final class Payload: Sendable {}

    @Test func consumedItemsAreReleasedAtOnce() async throws {
        let queue = BoundedQueue<Payload>(capacity: 4)
        weak var first: Payload?
        for round in 0..<200 {
            let payload = Payload()
            if round == 0 { first = payload }
            try await queue.push(payload)
            _ = await queue.pop()
        }
        #expect(first == nil, "a consumed item must not be kept alive by the queue")
    }
}
