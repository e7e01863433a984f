import FillGuardCore
import Foundation
import Testing

/// The bounded duplicate detection (docs/dedupe.md): a window of execution ids per symbol,
/// quantity checks beyond it, retirement of closed positions, and what recovery sees.
@Suite("Bounded dedupe")
struct BoundedDedupeTests {
    /// A report without cumulative quantity (as traces and the benchmarks send).
    static func bare(_ id: String, _ order: OrderID, _ quantity: Quantity = 1, symbol: Symbol = "GLD", side: Side = .buy) -> ExecutionReport {
        ExecutionReport(executionID: ExecutionID(id), orderID: order, symbol: symbol, side: side, lastQuantity: quantity, lastPrice: Price("100")!)
    }

    /// An open long of 300 with its stop and target live, and a scale-in of `scaleIn` shares.
    static func opened(_ configuration: SymbolStateMachine.Configuration, scaleIn: Quantity = 100_000) throws -> ModelBroker {
        var model = ModelBroker("GLD", configuration)
        try model.open(.test(.buy, 300).with(scaleIn: scaleIn))
        model.settle()
        try model.fill("P1", .entry, 300, at: "100")
        model.settle()
        return model
    }

    @Test("a repeat inside the window is refused as a duplicate and changes nothing")
    func duplicateInsideWindow() throws {
        var model = try Self.opened(.init(executionWindow: 64))
        let scaleIn = try #require(model.live("P1", .scaleIn(0))?.id)
        let first = Self.bare("F0", scaleIn)
        try model.deliver(first)
        for index in 1..<64 { try model.deliver(Self.bare("F\(index)", scaleIn)) }
        model.settle()
        let before = model.snapshot("P1")
        #expect(model.machine.hasApplied(first.executionID))
        #expect(throws: InputError(.duplicateExecution, "execution F0 was already applied; the repeat is ignored")) {
            try model.deliver(first)
        }
        #expect(model.snapshot("P1") == before)
        #expect(model.pull().isEmpty)
    }

    @Test("the execution memory stays bounded over many fills on one order")
    func memoryIsBounded() throws {
        let window = 32
        var model = try Self.opened(.init(executionWindow: window))
        let scaleIn = try #require(model.live("P1", .scaleIn(0))?.id)
        let start = model.machine.footprint
        var largest = 0
        for index in 0..<5_000 {
            try model.deliver(Self.bare("F\(index)", scaleIn))
            if index % 7 == 0 { model.settle() }
            largest = max(largest, model.machine.footprint.rememberedExecutions)
        }
        model.settle()
        let end = model.machine.footprint
        #expect(largest <= 2 * window, "at most two generations of ids are held")
        #expect(end.rememberedExecutions >= window, "at least the window is held")
        #expect(end.orders == start.orders, "native modify: no new orders")
        #expect(end.positions == 1)
        #expect(model.machine.executionCount == 5_001)
        #expect(model.snapshot("P1").netQuantity == 5_300)
        #expect(model.live("P1", .stopLoss)?.openQuantity == 5_300)
        // The newest ids are remembered, the oldest are not.
        #expect(model.machine.hasApplied(ExecutionID("F4999")))
        #expect(!model.machine.hasApplied(ExecutionID("F0")))
    }

    @Test("the id table keeps every id through its growth: each repeat is refused, and an id a refused fill used stays free")
    func idTableGrowth() throws {
        var model = try Self.opened(.init(executionWindow: 3_000), scaleIn: 3_000)
        let scaleIn = try #require(model.live("P1", .scaleIn(0))?.id)
        // 2,999 ids: the table doubles from 32 slots to 8,192 on the way.
        for index in 0..<2_999 {
            try model.deliver(Self.bare("F\(index)", scaleIn))
            if index % 97 == 0 { model.settle() }
        }
        model.settle()
        // A fill that would overfill the scale-in (one share left) is refused; its id is released.
        #expect(throws: InputError.self) { try model.deliver(Self.bare("X", scaleIn, 2)) }
        #expect(!model.machine.hasApplied(ExecutionID("X")))
        let before = model.snapshot("P1")
        for index in stride(from: 0, to: 2_999, by: 37) {
            #expect(throws: InputError.self) { try model.deliver(Self.bare("F\(index)", scaleIn)) }
        }
        #expect(model.snapshot("P1") == before, "repeats changed nothing")
        // The released id is accepted once, then refused.
        try model.deliver(Self.bare("X", scaleIn))
        #expect(model.machine.hasApplied(ExecutionID("X")))
        #expect(throws: InputError.self) { try model.deliver(Self.bare("X", scaleIn)) }
        #expect(model.snapshot("P1").netQuantity == 3_300)
        for index in 0..<2_999 { #expect(model.machine.hasApplied(ExecutionID("F\(index)"))) }
    }

    @Test("a repeat older than the window is still refused when the broker's cumulative quantity shows it was counted")
    func cumulativeCatchesOldRepeats() throws {
        var model = try Self.opened(.init(executionWindow: 4))
        for _ in 0..<20 {
            try model.fill("P1", .scaleIn(0), 1, at: "98")
        }
        model.settle()
        let old = model.reports[1]
        #expect(!model.machine.hasApplied(old.executionID), "its id left the window")
        #expect(model.machine.hasApplied(old), "but the cumulative quantity shows it was booked")
        let before = model.snapshot("P1")
        #expect(throws: InputError.self) { try model.deliver(old) }
        #expect(model.snapshot("P1") == before)
        #expect(model.pull().isEmpty)
    }

    @Test("a repeat older than the window that would overfill its order is refused")
    func overfillCatchesOldRepeats() throws {
        var model = try Self.opened(.init(executionWindow: 2), scaleIn: 10)
        let scaleIn = try #require(model.live("P1", .scaleIn(0))?.id)
        for index in 0..<10 { try model.deliver(Self.bare("F\(index)", scaleIn)) }
        model.settle()
        #expect(throws: InputError.self) { try model.deliver(Self.bare("F0", scaleIn)) }
        #expect(model.snapshot("P1").netQuantity == 310)
    }

    /// A closed P1 (stop filled for everything, the rest cancelled), then an open P2.
    static func closedThenReopened(_ configuration: SymbolStateMachine.Configuration) throws -> ModelBroker {
        var model = try opened(configuration)
        try model.fill("P1", .stopLoss, 300, at: "95")
        #expect(model.snapshot("P1").status == .closed)
        model.settle()
        try model.open(.test(.buy, 200, id: "P2"))
        model.settle()
        try model.fill("P2", .entry, 200, at: "101")
        model.settle()
        return model
    }

    @Test("closed positions beyond the retention are retired; a late report for a retired order is refused as unknown and changes nothing")
    func retiredOrdersRefuseLateReports() throws {
        var kept = try Self.closedThenReopened(.init())
        #expect(kept.machine.positionIDs == ["P1", "P2"], "nothing retired by default")
        var model = try Self.closedThenReopened(.init(retainedClosedPositions: 0))
        #expect(model.machine.positionIDs == ["P2"], "P1 retired")
        #expect(model.machine.snapshot(of: PositionID("P1")) == nil)
        let stopFill = try #require(model.reports.first { $0.lastQuantity == 300 && $0.side == .sell })
        #expect(model.machine.knows(stopFill.orderID))
        #expect(model.machine.retiredOrder(stopFill.orderID)?.filled == 300)
        #expect(model.machine.hasApplied(stopFill))
        let before = model.snapshot("P2")
        let footprint = model.machine.footprint
        // The late duplicate, its id still remembered: a duplicate.
        #expect(throws: InputError(.duplicateExecution, "execution \(stopFill.executionID) was already applied; the repeat is ignored")) {
            try model.deliver(stopFill)
        }
        // A late report with a new id for the retired order: unknown, typed, nothing changes.
        var late = stopFill
        late.executionID = "LATE-1"
        late.cumulativeQuantity = nil
        late.leavesQuantity = nil
        let error = try #require(throws: InputError.self) { try model.deliver(late) }
        #expect(error.code == .unknownOrder)
        #expect(error.message.contains("retired"))
        #expect(model.snapshot("P2") == before)
        #expect(model.machine.footprint == footprint)
        #expect(model.pull().isEmpty)
        // A retired position's id cannot be opened again on this machine.
        #expect(throws: InputError.self) {
            var actions: [SymbolStateMachine.Action] = []
            try model.machine.open(.test(.buy, 100, id: "P1"), emitting: &actions)
        }
        // Recovery: the broker's executions of the retired order are all booked.
        let retiredReports = model.reports.filter { $0.orderID == stopFill.orderID || model.machine.retiredOrder($0.orderID) != nil }
        let sorted = model.machine.reconcile(brokerExecutions: retiredReports)
        #expect(sorted.missing.isEmpty && sorted.retiredOrder.isEmpty && sorted.unknownOrder.isEmpty && sorted.ambiguous.isEmpty)
        _ = kept.pull()
    }

    @Test("retirement waits for a valid input: the closing event's final state stays readable and a refused input retires nothing")
    func retirementWaitsForAValidInput() throws {
        var model = ModelBroker("GLD", .init(retainedClosedPositions: 0))
        try model.open(.test(.buy, 300))
        model.settle()
        try model.fill("P1", .entry, 300, at: "100")
        model.settle()
        try model.fill("P1", .stopLoss, 300, at: "95")
        model.settle()
        // Closed, every order done, nothing in flight: retirable, but the events that finished it
        // (the stop's fill, the target's cancel) still find it, so their changes can be published.
        #expect(model.machine.positionIDs == ["P1"])
        #expect(model.snapshot("P1").status == .closed)
        let footprint = model.machine.footprint
        // Refused inputs change nothing, retirement included.
        #expect(throws: InputError.self) { try model.deliver(Self.bare("X1", "NOPE-1")) }
        #expect(throws: InputError.self) { try model.open(.test(.buy, 0, id: "P2")) }
        #expect(model.machine.positionIDs == ["P1"])
        #expect(model.machine.footprint == footprint)
        // The next valid input retires it first.
        try model.open(.test(.buy, 200, id: "P2"))
        #expect(model.machine.positionIDs == ["P2"])
        #expect(model.machine.snapshot(of: PositionID("P1")) == nil)
        model.settle()
        try model.fill("P2", .entry, 200, at: "101")
        model.settle()
        #expect(model.snapshot("P2").netQuantity == 200)
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
    }

    @Test("retirement keeps the machine's counts bounded over many brackets")
    func retirementBoundsPositions() throws {
        var model = ModelBroker("GLD", .init(executionWindow: 16, retainedClosedPositions: 2, retiredOrderMemory: 20))
        for index in 0..<40 {
            let id = PositionID("P\(index)")
            try model.open(.test(.buy, 100, id: id))
            model.settle()
            try model.fill(id, .entry, 100, at: "100")
            model.settle()
            try model.fill(id, .takeProfit, 100, at: "110")
            model.settle()
            let footprint = model.machine.footprint
            #expect(footprint.positions <= 3)
            #expect(footprint.orders <= 3 * 4)
            #expect(footprint.retiredOrders <= 20)
            #expect(footprint.rememberedExecutions <= 32)
        }
        #expect(model.machine.executionCount == 80)
        #expect(model.machine.invariantViolations(atQuiescence: true).isEmpty)
    }

    @Test("recovery's view: missed fills are found exactly even after the window moved on")
    func reconcileAfterTheWindowMoved() throws {
        var model = try Self.opened(.init(executionWindow: 4))
        let scaleIn = try #require(model.live("P1", .scaleIn(0))?.id)
        var broker: [ExecutionReport] = []
        for index in 0..<30 {
            let report = Self.bare("F\(index)", scaleIn)
            broker.append(report)
            try model.deliver(report)
        }
        model.settle()
        // Everything booked: nothing missing, though most ids left the window.
        var sorted = model.machine.reconcile(brokerExecutions: broker)
        #expect(sorted.missing.isEmpty && sorted.ambiguous.isEmpty)
        // Two fills made while down.
        let missed = [Self.bare("M1", scaleIn, 2), Self.bare("M2", scaleIn, 3)]
        sorted = model.machine.reconcile(brokerExecutions: broker + missed)
        #expect(sorted.missing.map(\.executionID) == ["M1", "M2"])
        // An order the machine never had.
        sorted = model.machine.reconcile(brokerExecutions: [Self.bare("U1", "NOPE-1")])
        #expect(sorted.unknownOrder.map(\.executionID) == ["U1"])
    }

    @Test("an image restored mid-stream gives the identical machine: same answers to duplicates and the same state after")
    func imageRoundTrip() throws {
        var model = try Self.closedThenReopened(.init(executionWindow: 8, retainedClosedPositions: 0))
        let scaleIn = try #require(model.live("P2", .scaleIn(0))?.id)
        for index in 0..<21 { try model.deliver(Self.bare("G\(index)", scaleIn)) }
        model.settle()
        let image = model.machine.image
        let json = try JSONEncoder().encode(image)
        var decoded = try JSONDecoder().decode(SymbolStateMachine.Image.self, from: json)
        decoded.previousExecutionIDs = image.previousExecutionIDs
        decoded.currentExecutionIDs = image.currentExecutionIDs
        var restored = model
        restored.machine = SymbolStateMachine(restoring: decoded, configuration: model.machine.configuration)
        #expect(restored.machine.footprint == model.machine.footprint)
        #expect(restored.machine.positionIDs == model.machine.positionIDs)
        #expect(restored.snapshot("P2") == model.snapshot("P2"))
        for index in 0..<21 {
            let id = ExecutionID("G\(index)")
            #expect(restored.machine.hasApplied(id) == model.machine.hasApplied(id))
        }
        // Both go on identically.
        for index in 21..<40 {
            try model.deliver(Self.bare("G\(index)", scaleIn))
            try restored.deliver(Self.bare("G\(index)", scaleIn))
        }
        model.settle()
        restored.settle()
        #expect(restored.snapshot("P2") == model.snapshot("P2"))
        #expect(restored.machine.footprint == model.machine.footprint)
        #expect(restored.sent == model.sent)
    }
}

extension BracketSpec {
    /// The same bracket with its scale-in resized.
    func with(scaleIn quantity: Quantity) -> BracketSpec {
        var spec = self
        spec.scaleIns = scaleIns.map { BracketSpec.ScaleIn(quantity: quantity, type: $0.type) }
        return spec
    }
}
