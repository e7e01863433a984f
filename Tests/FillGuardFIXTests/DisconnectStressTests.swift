import FillGuard
import FillGuardCore
import Foundation
import Testing
@testable import FillGuardFIX

/// A small deterministic generator (SplitMix64) so a failing run can be repeated.
struct StressRandom {
    var state: UInt64
    /// The next 64 random bits.
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// A number in `range`.
    mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(next() % UInt64(range.count)) }
}

@Suite("Connection killed at random points against the QuickFIX test exchange", .serialized, .timeLimit(.minutes(5)))
struct DisconnectStressTests {
    @Test func randomDisconnectsLoseNoReportAndLeaveEveryPositionProtected() async throws {
        let environment = ProcessInfo.processInfo.environment
        let count = Int(environment["FILLGUARD_FIX_STRESS_POSITIONS"] ?? "") ?? 30
        var random = StressRandom(state: UInt64(environment["FILLGUARD_FIX_STRESS_SEED"] ?? "") ?? 7)
        let harness = try await Harness.start()
        let (manager, feed) = manager(over: harness)

        var sizes: [PositionID: Int] = [:]
        for index in 0..<count {
            let id = PositionID("S\(index)")
            let long = index % 2 == 0
            let size = random.int(1...20) * 50
            sizes[id] = size
            try await manager.open(BracketSpec(positionID: id, symbol: Symbol("SYM\(index)"), side: long ? .buy : .sell, quantity: Quantity(size),
                                               entryType: .limit(Price("100")!), stopLoss: Price(long ? "90" : "110"),
                                               takeProfit: Price(long ? "110" : "90")))
        }
        await manager.waitUntilIdle()

        // Phase 1: every entry fills in 1-4 pieces, shuffled across positions, with the connection
        // dropped at random points in the burst.
        var commands: [String] = []
        for (id, size) in sizes {
            let entry = try #require(await manager.position(id)?.liveOrder(.entry))
            var left = size
            while left > 0 {
                let piece = left <= 50 ? left : random.int(1...(left / 50)) * 50
                commands.append("fill \(entry.id) \(piece) 100")
                left -= piece
            }
        }
        var fills = commands.count
        try await run(shuffled(commands, &random), with: &random, drops: max(4, commands.count / 20), on: harness)
        try await harness.broker.waitUntil { [fills] in $0.fillsDelivered >= fills }
        for (id, size) in sizes {
            _ = try await settle(manager, id) { position in
                position.netQuantity.magnitude == Quantity(size)
                    && position.liveOrder(.stopLoss)?.openQuantity == Quantity(size)
                    && position.liveOrder(.takeProfit)?.openQuantity == Quantity(size)
            }
        }

        // Phase 2: half the stops partially fill, again with drops in the burst.
        commands = []
        var expected = sizes
        for (id, size) in sizes.sorted(by: { $0.key.rawValue < $1.key.rawValue }) where random.int(0...1) == 1 && size > 50 {
            let stop = try #require(await manager.position(id)?.liveOrder(.stopLoss))
            let piece = random.int(1...(size / 50 - 1)) * 50
            commands.append("fill \(stop.id) \(piece) \(stop.side == .sell ? "90" : "110")")
            expected[id] = size - piece
        }
        fills += commands.count
        try await run(shuffled(commands, &random), with: &random, drops: max(3, commands.count / 20), on: harness)
        try await harness.broker.waitUntil { [fills] in $0.fillsDelivered >= fills }
        for (id, size) in expected {
            _ = try await settle(manager, id) { position in
                position.netQuantity.magnitude == Quantity(size)
                    && position.liveOrder(.stopLoss)?.openQuantity == Quantity(size)
                    && position.liveOrder(.takeProfit)?.openQuantity == Quantity(size)
            }
        }

        // Broker truth: per symbol exactly two live protective orders, each for the whole position.
        let orders = try await harness.peer.orders()
        for (index, id) in (0..<count).map({ ($0, PositionID("S\($0)")) }) {
            let live = orders.values.filter { $0.symbol == "SYM\(index)" && $0.isLive }
            let size = try #require(expected[id])
            #expect(live.count == 2, "\(id): live orders at the exchange \(live)")
            let snapshot = await manager.position(id)
            let history = harness.peer.events.filter { $0.contains("\(id.rawValue)-") }
            #expect(live.allSatisfy { Quantity($0.leaves) == Quantity(size) }, "\(id): \(live); FillGuard: \(String(describing: snapshot)); exchange saw: \(history)")
            #expect(live.allSatisfy { $0.side == (index % 2 == 0 ? "2" : "1") }, "\(id): \(live)")
        }
        #expect(await harness.broker.statistics.fillsDelivered == fills, "every fill exactly once")
        #expect(await harness.broker.statistics.disconnections >= 1)
        let statistics = await harness.broker.statistics
        #expect(statistics.requestTimeouts == 0, "every request answered after recovery: \(statistics)")
        #expect(await manager.invariantViolations().isEmpty)
        harness.expectNoRejectsFromPeer()
        feed.cancel()
        await harness.stop()
    }

    private func shuffled(_ commands: [String], _ random: inout StressRandom) -> [String] {
        var result = commands
        for index in stride(from: result.count - 1, to: 0, by: -1) {
            result.swapAt(index, random.int(0...index))
        }
        return result
    }

    /// Sends the commands, dropping the connection at `drops` random points; after each drop it
    /// waits for the reconnection (a real signal), so every drop cuts a live session.
    private func run(_ commands: [String], with random: inout StressRandom, drops: Int, on harness: Harness) async throws {
        var points = Set<Int>()
        while points.count < min(drops, commands.count) { points.insert(random.int(0...(commands.count - 1))) }
        for (index, command) in commands.enumerated() {
            if points.contains(index) {
                let logons = await harness.broker.statistics.logons
                try await harness.peer.command("drop")
                try await harness.peer.command(command) // produced while the connection is going down
                try await harness.broker.waitForLogons(logons + 1)
            } else {
                try await harness.peer.command(command)
            }
        }
    }
}
