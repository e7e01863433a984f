@testable import FillGuard
import FillGuardCore
import Testing

/// Mailbox buffers go round a pool instead of being allocated by the delivering thread and freed
/// by the runner; the lane queue keeps its order and hands back only pooled-size buffers.
@Suite("Envelope buffer pool", .timeLimit(.minutes(5)))
struct EnvelopeBufferPoolTests {
    private func envelope(_ id: String) -> SymbolLane.Envelope {
        SymbolLane.Envelope(event: .retryDue(OrderID(id)), enqueuedAt: 0)
    }

    private func orderID(of envelope: SymbolLane.Envelope?) -> OrderID? {
        guard case .retryDue(let id)? = envelope?.event else { return nil }
        return id
    }

    @Test("the pool hands back what it was given and keeps at most its limit")
    func keepsAtMostItsLimit() {
        let pool = EnvelopeBufferPool(limit: 2)
        let first = pool.take()
        let second = pool.take()
        let third = pool.take()
        #expect(pool.spareCount == 0)
        pool.give(first)
        pool.give(second)
        pool.give(third)
        #expect(pool.spareCount == 2, "the third buffer is freed, not kept")
        let again = pool.take()
        #expect(again == second || again == first, "a spare buffer is reused")
        #expect(pool.spareCount == 1)
        pool.give(again)
    }

    @Test("a queue on a pooled buffer keeps FIFO order across wrap-around and growth, and hands back only a pooled-size buffer")
    func queueOnPooledBuffer() {
        let pool = EnvelopeBufferPool()
        let capacity = EnvelopeBufferPool.bufferCapacity
        var queue = EventQueue()
        let startsWithout = !queue.hasBuffer
        #expect(startsWithout)
        queue.install(pool.take(), capacity: capacity)
        // Wrap around inside the pooled buffer: the order is kept.
        var next = 0
        var expected: [OrderID] = []
        for _ in 0..<3 {
            for _ in 0..<(capacity - 1) {
                queue.append(envelope("O\(next)"))
                expected.append(OrderID("O\(next)"))
                next += 1
            }
            for _ in 0..<(capacity - 1) {
                let popped = orderID(of: queue.popFirst())
                #expect(popped == expected.removeFirst())
            }
        }
        let drained = queue.isEmpty
        #expect(drained)
        let buffer = queue.removeAllAndTakeBuffer(ifCapacity: capacity)
        #expect(buffer != nil, "an untouched pooled buffer goes back")
        let leftWithout = !queue.hasBuffer
        #expect(leftWithout)
        pool.give(buffer!)

        // Beyond the pooled capacity the queue grows; the grown buffer is not the pool's size.
        queue.install(pool.take(), capacity: capacity)
        for index in 0..<(capacity * 2 + 1) { queue.append(envelope("G\(index)")) }
        for index in 0..<capacity {
            let popped = orderID(of: queue.popFirst())
            #expect(popped == OrderID("G\(index)"))
        }
        let left = queue.count
        #expect(left == capacity + 1)
        let grown = queue.removeAllAndTakeBuffer(ifCapacity: capacity)
        #expect(grown == nil, "a grown buffer is freed, not pooled")
        let emptied = queue.isEmpty && !queue.hasBuffer
        #expect(emptied)
    }

    @Test("lanes going idle return their buffers, and the next wave of fills reuses them instead of allocating",
          arguments: [false, true])
    func lanesReuseBuffers(journaled: Bool) async throws {
        let journal = journaled ? Journal(store: InMemoryJournalStore()) : nil
        let manager = FillManager(broker: TestBroker(), journal: journal, configuration: FillGuardConfiguration(retry: .immediate), logger: .quiet)
        if journaled { _ = try await manager.recover() }
        var fills = FillMaker()
        let scaleIns = try await manager.openLongPositions(count: 6, fills: &fills)
        let pool = manager.context.envelopeBuffers
        let afterSetUp = pool.spareCount
        #expect(afterSetUp >= 1, "idle lanes gave their buffers back")
        for wave in 0..<5 {
            for order in scaleIns { manager.receive(fills.fill(order, 1, at: "98")) }
            await manager.waitUntilIdle()
            #expect(pool.spareCount >= afterSetUp, "wave \(wave): every buffer came back")
        }
        let spareAfterWaves = pool.spareCount
        for order in scaleIns { manager.receive(fills.fill(order, 1, at: "98")) }
        await manager.waitUntilIdle()
        #expect(pool.spareCount == spareAfterWaves, "a wave like the last ones takes no new buffer")
        for (index, _) in scaleIns.enumerated() {
            let position = try #require(await manager.position(PositionID("P\(index)")))
            #expect(position.netQuantity == Quantity(106))
            #expect(position.liveOrder(.stopLoss)?.openQuantity == Quantity(106))
        }
    }
}
